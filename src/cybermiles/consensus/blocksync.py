"""Block sync: fetch committed blocks (with their commits) from peers that are ahead.

Peers tell us their last committed height in their consensus ``Status`` (see ``messages``);
:meth:`BlockSync.set_peer_height` records it. :meth:`BlockSync.request_more` keeps up to
``window`` requests in flight for the heights after ours that some peer has (one request per
height, to one peer, chosen round robin; a request unanswered after ``request_timeout`` seconds,
or answered with ``NoBlock``, goes to another peer). Responses wait in a buffer until the
reactor takes them **in height order** (:meth:`take`): only then is the validator set of the
height known, so only then can the commit be verified (``Commit.verify`` against
``app.validators(h)``) and the block checked (``app.check(h, block)`` must return the commit's
block hash). A response that fails either check gets its sender banned (:meth:`reject`).

The serving side answers ``BlockRequest(h)`` with ``app.block_and_commit(h)`` (or ``NoBlock``).

The same mechanism is the consensus catch-up: a validator that missed the precommits of a
height simply fetches the block once a peer has committed it (after ``grace`` seconds, so
that a node a few milliseconds behind does not fetch what it is about to decide itself).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from cybermiles.consensus.commit import Commit
from cybermiles.consensus.messages import (
    BLOCKSYNC_CHANNEL,
    BlockRequest,
    BlockResponse,
    MalformedMessage,
    NoBlock,
    decode_blocksync,
    encode_message,
)
from cybermiles.p2p.errors import PeerMisbehavior
from cybermiles.p2p.peers import Peer
from cybermiles.p2p.switch import Switch

if TYPE_CHECKING:
    from cybermiles.consensus.app import ConsensusApp

__all__ = ["COMMIT_SIZE_ALLOWANCE", "BlockSync"]

log = logging.getLogger("cybermiles.consensus.blocksync")

#: Bytes allowed for the commit and framing in a block response, on top of the block.
COMMIT_SIZE_ALLOWANCE = 256 * 1024


class BlockSync:
    """Requests, buffers and serves blocks on ``BLOCKSYNC_CHANNEL``.

    Parameters
    ----------
    switch
        Where to register the channel (``None``: no network, nothing to sync).
    app
        Serves ``block_and_commit``.
    now
        The clock (seconds).
    on_response
        Called (from the peer's receive task) when a response was buffered, so the reactor can
        wake up and apply it.
    """

    def __init__(
        self,
        switch: Switch | None,
        app: ConsensusApp,
        *,
        now: Callable[[], float],
        on_response: Callable[[], None],
        max_block_bytes: int,
        window: int = 16,
        request_timeout: float = 5.0,
        grace: float = 0.5,
    ) -> None:
        self.switch = switch
        self.app = app
        self.window = window
        self.request_timeout = request_timeout
        self.grace = grace
        self.max_block_bytes = max_block_bytes
        self._now = now
        self._on_response = on_response
        self.peer_heights: dict[str, int] = {}
        self._requests: dict[int, tuple[str, float]] = {}  # height -> (peer, sent at)
        self._failed: dict[int, set[str]] = {}  # height -> peers that timed out / had none
        self._responses: dict[int, tuple[str, bytes, Commit]] = {}
        self._seen_ahead: dict[int, float] = {}  # height -> when a peer first had it
        self._next_peer = 0
        self.enabled = True
        if switch is not None:
            switch.register_channel(
                BLOCKSYNC_CHANNEL,
                self._receive,
                max_message_size=max_block_bytes + COMMIT_SIZE_ALLOWANCE,
            )

    # -- peers -------------------------------------------------------------------------------

    def set_peer_height(self, peer_id: str, height: int) -> None:
        self.peer_heights[peer_id] = height

    def remove_peer(self, peer_id: str) -> None:
        self.peer_heights.pop(peer_id, None)
        for height, (peer, _) in list(self._requests.items()):
            if peer == peer_id:
                del self._requests[height]

    def max_peer_height(self) -> int:
        return max(self.peer_heights.values(), default=0)

    # -- requesting --------------------------------------------------------------------------

    def request_more(self, next_height: int) -> int:
        """Send requests for ``next_height`` onwards (up to ``window`` in flight); returns how
        many were sent. Forgets what is below ``next_height``."""
        if self.switch is None or not self.enabled:
            return 0
        self._forget_below(next_height)
        now = self._now()
        sent = 0
        best = self.max_peer_height()
        for height in range(next_height, min(next_height + self.window, best + 1)):
            if height in self._responses:
                continue
            pending = self._requests.get(height)
            if pending is not None:
                peer, at = pending
                if now - at < self.request_timeout and peer in self.peer_heights:
                    continue
                self._failed.setdefault(height, set()).add(peer)
                del self._requests[height]
            first_seen = self._seen_ahead.setdefault(height, now)
            # One block ahead: maybe consensus is about to decide it; wait a little.
            if height == best and now - first_seen < self.grace:
                continue
            peer = self._pick_peer(height)
            if peer is None:
                continue
            if self.switch.send(peer, BLOCKSYNC_CHANNEL, encode_message(BlockRequest(height))):
                self._requests[height] = (peer, now)
                sent += 1
        return sent

    def _pick_peer(self, height: int) -> str | None:
        failed = self._failed.get(height, set())
        candidates = sorted(p for p, h in self.peer_heights.items() if h >= height)
        fresh = [p for p in candidates if p not in failed] or candidates
        if not fresh:
            return None
        self._next_peer += 1
        return fresh[self._next_peer % len(fresh)]

    def _forget_below(self, height: int) -> None:
        for table in (self._requests, self._failed, self._responses, self._seen_ahead):
            for h in [h for h in table if h < height]:
                del table[h]

    # -- responses ---------------------------------------------------------------------------

    def take(self, height: int) -> tuple[str, bytes, Commit] | None:
        """The buffered response for ``height`` (sender, block, commit), removed."""
        found = self._responses.pop(height, None)
        if found is not None:
            self._requests.pop(height, None)
        return found

    def reject(self, height: int, peer_id: str, reason: str) -> None:
        """A response for ``height`` failed verification: ban its sender and ask elsewhere."""
        self._failed.setdefault(height, set()).add(peer_id)
        self._requests.pop(height, None)
        self.peer_heights.pop(peer_id, None)
        if self.switch is not None:
            self.switch.ban(peer_id, f"block sync: {reason}")

    @property
    def in_flight(self) -> int:
        return len(self._requests)

    # -- the channel -------------------------------------------------------------------------

    async def _receive(self, peer: Peer, payload: bytes) -> None:
        try:
            message = decode_blocksync(payload, self.max_block_bytes)
        except MalformedMessage as e:
            raise PeerMisbehavior(f"malformed block sync message: {e}") from e
        if isinstance(message, BlockRequest):
            self._serve(peer, message.height)
        elif isinstance(message, NoBlock):
            pending = self._requests.get(message.height)
            if pending is not None and pending[0] == peer.node_id:
                del self._requests[message.height]
                self._failed.setdefault(message.height, set()).add(peer.node_id)
        else:
            self._accept(peer.node_id, message)

    def _serve(self, peer: Peer, height: int) -> None:
        assert self.switch is not None
        found = None
        if self.enabled and height <= self.app.height():
            try:
                found = self.app.block_and_commit(height)
            except Exception:
                log.exception("block_and_commit(%d) failed", height)
        if found is not None and len(found[0]) <= self.max_block_bytes:
            reply: BlockResponse | NoBlock = BlockResponse(height, found[0], found[1])
        else:
            reply = NoBlock(height)
        self.switch.send(peer, BLOCKSYNC_CHANNEL, encode_message(reply))

    def _accept(self, peer_id: str, response: BlockResponse) -> None:
        pending = self._requests.get(response.height)
        if pending is None or pending[0] != peer_id:
            return  # unsolicited or late (re-requested elsewhere): ignore
        if response.commit.height != response.height:
            self.reject(response.height, peer_id, "commit for another height")
            return
        self._responses[response.height] = (peer_id, response.block, response.commit)
        self._on_response()
