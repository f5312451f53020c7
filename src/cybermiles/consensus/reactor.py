"""The consensus reactor: runs the pure ``ConsensusState`` on the network, the WAL and the app.

One asyncio task (``_run``) takes every input in turn from one queue, like CometBFT's
``receiveRoutine``: peer messages (decoded by the channel handlers), fired timeouts, "start the
next height" and "a block-sync response arrived". So the state machine, the WAL and the app are
only ever touched by that task (and by the start-up replay, before it runs).

For each input the reactor

* checks it: a vote or proposal must be signed by a member of the height's validator set
  (``signing.verify_*``); a bad signature, an unknown signer or a malformed message gets the
  peer banned (``Switch.ban``). Messages for the *next* height wait, unverified and bounded,
  until that height starts (its validator set is known only once this height is committed);
  other heights are dropped (gossip or block sync brings what is still needed);
* writes it to the WAL (``WAL.write``) and only then feeds it to the state machine;
* carries out the actions:

  ``BroadcastVote/Proposal``  sign through the ``FilePrivValidator`` (which persists its
                              last-sign state first and refuses conflicting signatures), write
                              the signed message with ``WAL.write_sync``, then broadcast it;
  ``ScheduleTimeout``         a timer on the clock; when it fires the ``TimeoutEvent`` is
                              written to the WAL and fed;
  ``RequestValue``            ``app.propose(h, r, last_commit)``; the block is kept by hash
                              (and written to the WAL in parts) to go out with the proposal;
  ``Decide``                  build the ``Commit`` from the decided precommits (own one signed),
                              ``app.commit`` (``Divergence`` stops the reactor), write the
                              end-height marker, wait ``timeouts.commit_ms``, start ``h + 1``;
  ``DuplicateVoteEvidence``   handled like evidence from a peer (below).

Evidence gossip (CometBFT's evidence reactor, simplified): duplicate-vote evidence, found by our
state machine or received from a peer on ``EVIDENCE_CHANNEL``, is handled once per
``evidence.hash()`` (a bounded seen-set): it is verified against the validator set of its height
(``app.validators``; evidence whose set is unknown or pruned, or older than
``ReactorConfig.evidence_max_age``, is skipped silently and not remembered), handed to
``app.add_evidence`` (the pending pool the proposer includes in blocks) and sent to every other
peer. A peer sending evidence that fails verification is banned. The most recent valid evidence
is also sent to each peer that connects, so a node that was away still gets it.

Received proposals carry the whole block: ``app.check(h, block)`` gives ``valid``. A check that
returns *another* hash than the signed proposal's means the relaying peer swapped the block:
banned. (Blocks larger than ``ReactorConfig.max_block_bytes`` are refused.)

Gossip (CometBFT's PeerState, simplified): every ``gossip_interval`` each node broadcasts a
``Status`` (height, round, step, last committed height, which proposals and votes it holds for
the height). A node that receives a peer's Status for its own height sends the peer the
proposals and votes it lacks (not more often than every ``resend_after`` seconds per item). A
peer at a lower height catches up by block sync (``blocksync``), which is also how a node that
starts late or fell behind gets to the head: blocks and commits from peers, verified and
committed in order, then consensus simply continues at ``app.height() + 1``.

Restart (``start``): the WAL is replayed from its last end-height marker (when that marker is
``app.height()``; otherwise the app is ahead of the log and a new marker is written) through
the same code path. Our own signed votes and proposals found in the log are reused when the
state machine emits them again (never re-signed); a message the privval refuses (it signed a
conflicting one that the log lost) is dropped, not sent. A ``RequestValue`` is answered only
after the replay, unless the log holds the value we proposed.

Fatal errors stop the reactor and are kept in :attr:`ConsensusReactor.error` (and raised by
:meth:`ConsensusReactor.wait`): ``Divergence`` from ``app.commit``, and any failure of the
WAL or the privval to persist (continuing could sign without a durable record).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from cybermiles.consensus.actions import (
    Action,
    BroadcastProposal,
    BroadcastVote,
    Decide,
    RequestValue,
    ScheduleTimeout,
)
from cybermiles.consensus.actions import DuplicateVoteEvidence as EvidenceAction
from cybermiles.consensus.app import ConsensusApp, Divergence
from cybermiles.consensus.blocksync import COMMIT_SIZE_ALLOWANCE, BlockSync
from cybermiles.consensus.commit import Commit, InvalidCommit
from cybermiles.consensus.events import (
    Event,
    ProposalEvent,
    StartHeight,
    TimeoutEvent,
    ValueEvent,
    VoteEvent,
)
from cybermiles.consensus.messages import (
    EVIDENCE_CHANNEL,
    PROPOSAL_CHANNEL,
    STATE_CHANNEL,
    VOTE_CHANNEL,
    BlockPart,
    EvidenceMessage,
    MalformedMessage,
    ProposalMessage,
    ProposalRecord,
    Status,
    VoteBits,
    VoteMessage,
    bitmap,
    decode_evidence_message,
    decode_proposal_message,
    decode_status,
    decode_vote_message,
    decode_wal_record,
    encode_message,
    encode_wal_block,
    encode_wal_proposal,
    encode_wal_timeout,
    encode_wal_value,
    encode_wal_vote,
    has_bit,
)
from cybermiles.consensus.privval import DoubleSignError, FilePrivValidator, step_of
from cybermiles.consensus.proposer import ValidatorSet
from cybermiles.consensus.signing import verify_proposal, verify_vote
from cybermiles.consensus.state_machine import ConsensusState
from cybermiles.consensus.timeouts import TimeoutConfig
from cybermiles.consensus.types import Proposal, Vote, VoteType
from cybermiles.consensus.votes import DuplicateVoteEvidence, InvalidEvidence
from cybermiles.consensus.wal import WAL
from cybermiles.p2p.errors import PeerMisbehavior
from cybermiles.p2p.peers import Peer
from cybermiles.p2p.switch import Switch

__all__ = [
    "Clock",
    "ConsensusReactor",
    "LoopClock",
    "ReactorConfig",
    "ReactorError",
]

log = logging.getLogger("cybermiles.consensus.reactor")
SLOW_APP_CALL = 0.25  # seconds: app calls taking longer are logged (block size tuning aid)


def _log_slow(what: str, height: int, started: float, detail: str = "") -> None:
    elapsed = time.perf_counter() - started
    if elapsed >= SLOW_APP_CALL:
        log.info("%s(%d) took %.2f s%s", what, height, elapsed, detail)


MAX_PROPOSALS_PER_ROUND = 4
STATUS_MESSAGE_SIZE = 64 * 1024
VOTE_MESSAGE_SIZE = 1024
EVIDENCE_MESSAGE_SIZE = 4 * 1024
MAX_SEEN_EVIDENCE = 4096  # evidence hashes remembered (verified, valid or not)
MAX_RECENT_EVIDENCE = 64  # valid evidence kept to send to peers that connect


class ReactorError(Exception):
    """The reactor cannot start or continue (e.g. an unreadable WAL record)."""


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time and timers for the reactor (the event loop in production, a fake one in tests)."""

    def time(self) -> float:
        """Seconds, monotonic."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """The running asyncio loop's clock."""

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)


@dataclass(frozen=True, slots=True)
class ReactorConfig:
    """Networking knobs of the reactor (consensus timeouts are a ``TimeoutConfig``).

    ``max_block_bytes`` must stay below the switch's ``max_message_size`` minus the block-sync
    allowance (``COMMIT_SIZE_ALLOWANCE``).
    """

    gossip_interval: float = 0.1  # seconds between Status broadcasts (CometBFT peer_gossip_sleep)
    resend_after: float = 1.0  # seconds before re-sending an item a peer still lacks
    max_block_bytes: int = 4 * 1024 * 1024
    max_pending: int = 4096  # next-height messages kept until that height starts
    sync_window: int = 16  # block-sync requests in flight
    sync_request_timeout: float = 5.0
    sync_grace: float = 0.5  # wait before fetching the one block we may decide ourselves
    queue_size: int = 10_000  # inputs waiting for the consensus task (peers block beyond)
    evidence_max_age: int = 100  # heights: older evidence is not gossiped (the app's limit)


# --- internal queue items --------------------------------------------------------------------


_PeerMessage = Status | ProposalMessage | VoteMessage | EvidenceMessage


@dataclass(frozen=True, slots=True)
class _PeerInput:
    peer_id: str
    message: _PeerMessage


@dataclass(frozen=True, slots=True)
class _Timeout:
    event: TimeoutEvent


@dataclass(frozen=True, slots=True)
class _StartNext:
    height: int


@dataclass(frozen=True, slots=True)
class _Wake:
    pass


_Item = _PeerInput | _Timeout | _StartNext | _Wake
_EVENT_TYPES = (StartHeight, ProposalEvent, VoteEvent, TimeoutEvent, ValueEvent)


# --- per-height and per-peer bookkeeping -----------------------------------------------------


class _HeightStore:
    """The verified proposals, blocks and votes of the current height (what gossip serves)."""

    def __init__(self, height: int, validators: ValidatorSet) -> None:
        self.height = height
        self.index = {v.address: i for i, v in enumerate(validators.validators)}
        self.proposals: dict[tuple[int, bytes], tuple[Proposal, bool]] = {}
        self.blocks: dict[bytes, bytes] = {}
        self.votes: dict[tuple[int, VoteType], dict[bytes, Vote]] = {}
        self.seen: set[tuple[bytes, int, VoteType, bytes | None]] = set()
        self.parts: dict[bytes, dict[int, bytes]] = {}

    def proposal_count(self, round: int) -> int:
        return sum(1 for r, _ in self.proposals if r == round)

    def add_proposal(self, proposal: Proposal, valid: bool) -> None:
        self.proposals.setdefault((proposal.round, proposal.block_hash), (proposal, valid))

    def has_vote(self, vote: Vote) -> bool:
        return (vote.validator, vote.round, vote.type, vote.block_hash) in self.seen

    def add_vote(self, vote: Vote) -> None:
        self.seen.add((vote.validator, vote.round, vote.type, vote.block_hash))
        self.votes.setdefault((vote.round, vote.type), {}).setdefault(vote.validator, vote)

    def add_part(self, part: BlockPart) -> None:
        parts = self.parts.setdefault(part.block_hash, {})
        parts[part.index] = part.data
        if len(parts) == part.count and all(i in parts for i in range(part.count)):
            self.blocks[part.block_hash] = b"".join(parts[i] for i in range(part.count))
            del self.parts[part.block_hash]

    def vote_bits(self) -> tuple[VoteBits, ...]:
        return tuple(
            VoteBits(r, t, bitmap({self.index[a] for a in by_validator}))
            for (r, t), by_validator in sorted(self.votes.items())
        )


@dataclass(slots=True)
class _PeerState:
    status: Status | None = None
    sent: dict[tuple[Any, ...], float] = field(default_factory=dict)  # item -> when (this height)

    def update(self, status: Status) -> None:
        if self.status is None or self.status.height != status.height:
            self.sent.clear()
        self.status = status

    def at_height(self, height: int) -> bool:
        return self.status is not None and self.status.height == height


def _same_vote(a: Vote, b: Vote) -> bool:
    return (a.type, a.height, a.round, a.block_hash, a.validator) == (
        b.type,
        b.height,
        b.round,
        b.block_hash,
        b.validator,
    )


def _same_proposal(a: Proposal, b: Proposal) -> bool:
    return replace(a, signature=b"") == replace(b, signature=b"")


def _message_height(message: ProposalMessage | VoteMessage) -> int:
    if isinstance(message, ProposalMessage):
        return message.proposal.height
    return message.vote.height


class ConsensusReactor:
    """Drives consensus for one node (see the module docstring).

    Parameters
    ----------
    app
        The chain (``ConsensusApp``).
    switch
        The p2p switch; channels are registered here, so create the reactor before
        ``switch.start()``. ``None``: a network of one (a single-validator devnet).
    priv
        The validator's signer; ``None`` for a full node (it follows consensus, never votes).
        The node votes at the heights where a validator with ``priv.pub_key`` is in the set.
    wal
        The consensus WAL (the reactor does not close it).
    chain_id
        Bound into every signature.
    timeouts
        Consensus timeouts.
    config
        Gossip, block-size and sync settings.
    clock
        Time and timers (default: the running event loop).
    """

    def __init__(
        self,
        app: ConsensusApp,
        switch: Switch | None,
        priv: FilePrivValidator | None,
        wal: WAL,
        chain_id: int,
        timeouts: TimeoutConfig,
        *,
        config: ReactorConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.app = app
        self.switch = switch
        self.priv = priv
        self.wal = wal
        self.chain_id = chain_id
        self.timeouts = timeouts
        self.config = config or ReactorConfig()
        self.clock: Clock = clock or LoopClock()
        self.error: BaseException | None = None
        self.height = 0
        self.state: ConsensusState | None = None
        self.address: bytes | None = None
        self._vals: ValidatorSet | None = None
        self._store: _HeightStore | None = None
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(self.config.queue_size)
        self._pending: list[_PeerInput] = []  # next height's messages, unverified
        self._own: dict[tuple[int, int, int], Vote | Proposal] = {}  # signed, by (h, r, step)
        self._decision: Decide | None = None
        self._committed_height = 0  # decided and committed; waiting commit_ms to start next
        self._last_commit: Commit | None = None
        self._timers: list[TimerHandle] = []
        self._replaying = False
        self._deferred_request: RequestValue | None = None
        self._peers: dict[str, _PeerState] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._stopped = asyncio.Event()
        self._vote_listeners: list[Callable[[Vote], None]] = []
        self._commit_listeners: list[Callable[[int, bytes, Commit], None]] = []
        self._seen_evidence: OrderedDict[bytes, None] = OrderedDict()
        self._recent_evidence: OrderedDict[bytes, DuplicateVoteEvidence] = OrderedDict()
        self.sync = BlockSync(
            switch,
            app,
            now=lambda: self.clock.time(),
            on_response=self._wake,
            max_block_bytes=self.config.max_block_bytes,
            window=self.config.sync_window,
            request_timeout=self.config.sync_request_timeout,
            grace=self.config.sync_grace,
        )
        if switch is not None:
            switch.register_channel(
                STATE_CHANNEL, self._receive_state, max_message_size=STATUS_MESSAGE_SIZE
            )
            switch.register_channel(
                PROPOSAL_CHANNEL,
                self._receive_proposal,
                max_message_size=self.config.max_block_bytes + COMMIT_SIZE_ALLOWANCE,
            )
            switch.register_channel(
                VOTE_CHANNEL, self._receive_vote, max_message_size=VOTE_MESSAGE_SIZE
            )
            switch.register_channel(
                EVIDENCE_CHANNEL, self._receive_evidence, max_message_size=EVIDENCE_MESSAGE_SIZE
            )
            switch.add_peer_listener(self._peer_added, self._peer_removed)

    # ------------------------------------------------------------------ public API

    def add_vote_listener(self, listener: Callable[[Vote], None]) -> None:
        """Call ``listener(vote)`` for every signed vote this node accepts or signs."""
        self._vote_listeners.append(listener)

    def add_commit_listener(self, listener: Callable[[int, bytes, Commit], None]) -> None:
        """Call ``listener(height, block, commit)`` after each block this node commits."""
        self._commit_listeners.append(listener)

    @property
    def running(self) -> bool:
        return self._started and not self._stopped.is_set()

    async def start(self) -> None:
        """Replay the WAL, start the consensus task and (with a switch) gossip.

        Raises
        ------
        ReactorError
            A WAL record that cannot be decoded.
        """
        if self._started:
            raise RuntimeError("reactor already started")
        self._started = True
        try:
            self._recover()
        except BaseException as exc:
            self._fail(exc)
            raise
        self._tasks.append(asyncio.create_task(self._run(), name="consensus-reactor"))
        if self.switch is not None:
            self._tasks.append(asyncio.create_task(self._gossip_loop(), name="consensus-gossip"))

    async def stop(self) -> None:
        """Stop the tasks and timers (the WAL stays open; its owner closes it)."""
        self._stopped.set()
        self._cancel_timers()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait(self) -> None:
        """Wait until the reactor stops; raise the error that stopped it, if any."""
        await self._stopped.wait()
        if self.error is not None:
            raise self.error

    # ------------------------------------------------------------------ start-up and replay

    def _recover(self) -> None:
        app_height = self.app.height()
        replay = self.wal.replay()
        end = replay.end_height or 0
        records: tuple[bytes, ...] = ()
        if end == app_height:
            records = replay.messages
        else:
            if end > app_height:
                log.warning(
                    "WAL ends at height %d but the app is at %d: starting after the app",
                    end,
                    app_height,
                )
            self.wal.write_end_height(app_height)
        entries = []
        for raw in records:
            try:
                entries.append(decode_wal_record(raw))
            except MalformedMessage as e:
                raise ReactorError(f"undecodable consensus WAL record: {e}") from e
        if app_height > 0:
            found = self.app.block_and_commit(app_height)
            self._last_commit = found[1] if found is not None else None
        self._committed_height = app_height
        self._own = {}
        own_key = self.priv.pub_key if self.priv is not None else None
        vals = self.app.validators(app_height + 1)
        for entry in entries:  # our own signed messages: reused, never re-signed
            message = entry.proposal if isinstance(entry, ProposalRecord) else entry
            if isinstance(message, Vote | Proposal) and message.height == app_height + 1:
                signer = message.validator if isinstance(message, Vote) else message.proposer
                member = vals.get(signer)
                if member is not None and member.pub_key == own_key:
                    key = (message.height, message.round, step_of(message))
                    self._own[key] = message
        self._replaying = True
        try:
            self._enter_height(app_height + 1)
            for entry in entries:
                self._replay_entry(entry)
        finally:
            self._replaying = False
        if entries:
            log.info("replayed %d WAL records at height %d", len(entries), self.height)
        request, self._deferred_request = self._deferred_request, None
        if request is not None:
            self._feed_all([], [request])

    def _replay_entry(self, entry: Any) -> None:
        store = self._store
        assert store is not None
        if isinstance(entry, BlockPart):
            store.add_part(entry)
        elif isinstance(entry, ProposalRecord):
            if entry.proposal.height == self.height:
                store.add_proposal(entry.proposal, entry.valid)
                self._feed(ProposalEvent(entry.proposal, entry.valid))
        elif isinstance(entry, Vote):
            if entry.height == self.height:
                store.add_vote(entry)
                self._feed(VoteEvent(entry))
        elif isinstance(entry, ValueEvent):
            if self._deferred_request is not None and (entry.height, entry.round) == (
                self._deferred_request.height,
                self._deferred_request.round,
            ):
                self._deferred_request = None
            self._feed(entry)
        elif isinstance(entry, TimeoutEvent):
            self._feed(entry)

    # ------------------------------------------------------------------ heights

    def _own_address(self, vals: ValidatorSet) -> bytes | None:
        if self.priv is None:
            return None
        for v in vals.validators:
            if v.pub_key == self.priv.pub_key:
                return v.address
        return None

    def _enter_height(self, height: int) -> None:
        """Start consensus at ``height`` (the app is at ``height - 1``)."""
        self._cancel_timers()
        vals = self.app.validators(height)
        self.height = height
        self._vals = vals
        self.address = self._own_address(vals)
        self._store = _HeightStore(height, vals)
        self._decision = None
        self._own = {k: m for k, m in self._own.items() if k[0] >= height}
        self.state = ConsensusState(self.address, height, lambda _h: vals, self.timeouts)
        pending, self._pending = self._pending, []
        self._feed(StartHeight(height))
        for item in pending:
            if _message_height(item.message) == height:  # type: ignore[arg-type]
                self._on_peer_input(item)

    def _start_next(self, height: int) -> None:
        if height == self.app.height() + 1 and height > self.height:
            self._enter_height(height)

    # ------------------------------------------------------------------ feeding the machine

    def _feed(self, event: Event, record: bytes | None = None) -> None:
        """Write ``record`` to the WAL (live only), feed ``event`` and carry out the actions."""
        if record is not None and not self._replaying:
            self.wal.write(record)
        self._feed_all([event], [])

    def _feed_all(self, events: list[Event], actions: list[Action]) -> None:
        todo: deque[Event | Action] = deque([*actions, *events])
        while todo:
            item = todo.popleft()
            if isinstance(
                item, StartHeight | ProposalEvent | VoteEvent | TimeoutEvent | ValueEvent
            ):
                assert self.state is not None
                todo.extendleft(reversed(self.state.handle(item)))
            else:
                follow_up = self._execute(item)
                if follow_up is not None:
                    todo.appendleft(follow_up)

    def _execute(self, action: Action) -> Event | None:
        if isinstance(action, BroadcastVote):
            self._own_vote(action.vote)
        elif isinstance(action, BroadcastProposal):
            self._own_proposal(action.proposal)
        elif isinstance(action, ScheduleTimeout):
            self._schedule(action)
        elif isinstance(action, RequestValue):
            if self._replaying:
                self._deferred_request = action
                return None
            return self._request_value(action)
        elif isinstance(action, Decide):
            if action.height == self.height:
                self._decision = action
        elif isinstance(action, EvidenceAction):
            self._report_evidence(action)
        return None

    def _schedule(self, action: ScheduleTimeout) -> None:
        event = TimeoutEvent(action.height, action.round, action.step)
        self._timers.append(
            self.clock.call_later(
                action.duration_ms / 1000, lambda: self._put_nowait(_Timeout(event))
            )
        )

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers = []

    def _request_value(self, request: RequestValue) -> Event | None:
        started = time.perf_counter()
        try:
            block_hash, block = self.app.propose(request.height, request.round, self._last_commit)
        except Exception:
            log.exception("app.propose(%d, %d) failed", request.height, request.round)
            return None
        _log_slow("app.propose", request.height, started, f" ({len(block)} bytes)")
        if len(block) > self.config.max_block_bytes:
            log.error("proposed block of %d bytes exceeds max_block_bytes", len(block))
            return None
        assert self._store is not None
        self._store.blocks[block_hash] = block
        event = ValueEvent(request.height, request.round, block_hash)
        for part in encode_wal_block(block_hash, block):
            self.wal.write(part)
        self.wal.write_sync(encode_wal_value(event))
        return event

    # ------------------------------------------------------------------ own messages

    def _own_vote(self, vote: Vote) -> None:
        key = (vote.height, vote.round, step_of(vote))
        cached = self._own.get(key)
        if isinstance(cached, Vote) and _same_vote(cached, vote):
            signed = cached
        else:
            if self.priv is None:
                return
            try:
                signed = self.priv.sign_vote(self.chain_id, vote)
            except DoubleSignError as e:
                log.error("not sending vote %s: %s", vote, e)
                return
            self.wal.write_sync(encode_wal_vote(signed))
            self._own[key] = signed
        assert self._store is not None
        self._store.add_vote(signed)
        self._notify_vote(signed)
        self._broadcast_vote(signed)

    def _broadcast_vote(self, vote: Vote) -> None:
        """Send our signed vote to every peer (a seam for byzantine tests)."""
        if self.switch is None:
            return
        self.switch.broadcast(VOTE_CHANNEL, encode_message(VoteMessage(vote)))
        now = self.clock.time()
        assert self._store is not None
        key = ("v", vote.round, vote.type, self._store.index.get(vote.validator))
        for state in self._peers.values():
            if state.at_height(vote.height):
                state.sent[key] = now

    def _own_proposal(self, proposal: Proposal) -> None:
        assert self._store is not None
        block = self._store.blocks.get(proposal.block_hash)
        if block is None:
            log.error("no block %s to propose", proposal.block_hash.hex())
            return
        key = (proposal.height, proposal.round, step_of(proposal))
        cached = self._own.get(key)
        if isinstance(cached, Proposal) and _same_proposal(cached, proposal):
            signed = cached
        else:
            if self.priv is None:
                return
            try:
                signed = self.priv.sign_proposal(self.chain_id, proposal)
            except DoubleSignError as e:
                log.error("not sending proposal %s: %s", proposal, e)
                return
            self.wal.write_sync(encode_wal_proposal(signed, True))
            self._own[key] = signed
        self._store.add_proposal(signed, True)
        if self.switch is None:
            return
        message = encode_message(ProposalMessage(signed, block))
        self.switch.broadcast(PROPOSAL_CHANNEL, message)
        now = self.clock.time()
        for state in self._peers.values():
            if state.at_height(signed.height):
                state.sent[("p", signed.round, signed.block_hash)] = now

    def _notify_vote(self, vote: Vote) -> None:
        for listener in self._vote_listeners:
            listener(vote)

    def _report_evidence(self, action: EvidenceAction) -> None:
        if not (action.vote_a.signature and action.vote_b.signature):
            log.critical(
                "conflicting votes of our own validator: %s / %s", action.vote_a, action.vote_b
            )
            return
        self._on_evidence(None, DuplicateVoteEvidence.from_votes(action.vote_a, action.vote_b))

    def _evidence_validators(self, height: int) -> ValidatorSet | None:
        """The validator set of ``height``, or None when it is unknown or pruned (or the
        evidence is too old to matter)."""
        if height == self.height and self._vals is not None:
            return self._vals
        if height < 1 or height < self.height - self.config.evidence_max_age:
            return None
        try:
            return self.app.validators(height)
        except Exception:  # not known yet, or pruned: nothing to verify against
            return None

    def _on_evidence(self, peer_id: str | None, evidence: DuplicateVoteEvidence) -> None:
        """Verify new ``evidence`` (ours when ``peer_id`` is None), hand it to the app and
        gossip it; a peer sending invalid evidence is banned."""
        evidence_hash = evidence.hash()
        if evidence_hash in self._seen_evidence:
            return
        vals = self._evidence_validators(evidence.height)
        if vals is None:
            log.debug("skipping evidence of height %d: no validator set", evidence.height)
            return
        self._seen_evidence[evidence_hash] = None
        while len(self._seen_evidence) > MAX_SEEN_EVIDENCE:
            self._seen_evidence.popitem(last=False)
        try:
            evidence.verify(self.chain_id, vals)
        except InvalidEvidence as e:
            if peer_id is None:
                log.error("dropping invalid evidence: %s", e)
            else:
                self._ban(peer_id, f"invalid evidence: {e}")
            return
        log.info(
            "duplicate %s evidence against %s at height %d/%d",
            evidence.vote_a.type.name.lower(),
            evidence.validator.hex(),
            evidence.height,
            evidence.vote_a.round,
        )
        if evidence.validator == self.address:
            log.critical("evidence against our own validator: another signer uses our key?")
        try:
            self.app.add_evidence(evidence)
        except Exception:
            log.exception("app.add_evidence failed")
        self._recent_evidence[evidence_hash] = evidence
        while len(self._recent_evidence) > MAX_RECENT_EVIDENCE:
            self._recent_evidence.popitem(last=False)
        self._gossip_evidence(evidence, exclude=peer_id)

    def _gossip_evidence(self, evidence: DuplicateVoteEvidence, exclude: str | None) -> None:
        if self.switch is None:
            return
        payload = encode_message(EvidenceMessage(evidence))
        for peer_id in list(self._peers):
            if peer_id != exclude:
                self.switch.send(peer_id, EVIDENCE_CHANNEL, payload)

    # ------------------------------------------------------------------ the consensus task

    def _put_nowait(self, item: _Item) -> None:
        if self._stopped.is_set():
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # Timers and wake-ups must not be lost: hand them to a task that waits for room.
            asyncio.get_running_loop().create_task(self._queue.put(item))

    def _wake(self) -> None:
        self._put_nowait(_Wake())

    async def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                self._progress()
                item = await self._queue.get()
                self._handle_item(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, Divergence):
            log.critical("consensus stopped: the app diverged from the network: %s", exc)
        else:
            log.critical("consensus stopped: %s", exc, exc_info=exc)
        if self.error is None:
            self.error = exc
        self._stopped.set()
        self._cancel_timers()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()

    def _handle_item(self, item: _Item) -> None:
        if isinstance(item, _PeerInput):
            self._on_peer_input(item)
        elif isinstance(item, _Timeout):
            event = item.event
            if event.height == self.height:
                self._feed(event, encode_wal_timeout(event))
        elif isinstance(item, _StartNext):
            self._start_next(item.height)

    def _progress(self) -> None:
        """Commit what can be committed: the decision, then blocks from block sync."""
        decision = self._decision
        if decision is not None and self._committed_height < decision.height:
            self._commit_decision(decision)
        synced = self._apply_synced_blocks()
        if synced:
            self._start_next(self.app.height() + 1)
        if self.switch is not None:
            self.sync.request_more(self.app.height() + 1)

    def _commit_decision(self, decision: Decide) -> None:
        assert self._store is not None and self._vals is not None
        block = self._store.blocks.get(decision.block_hash)
        if block is None:
            log.warning("decided block %s is missing: waiting for block sync", decision.block_hash)
            self._decision = None
            return
        signatures = []
        for vote in decision.precommits:
            if not vote.signature:  # our own, counted unsigned by the state machine
                own = self._own.get((vote.height, vote.round, step_of(vote)))
                if not isinstance(own, Vote) or not _same_vote(own, vote):
                    continue
                vote = own
            signatures.append((vote.validator, vote.signature))
        commit = Commit(decision.height, decision.round, decision.block_hash, tuple(signatures))
        try:
            commit.verify(self.chain_id, self._vals, height=self.height)
        except InvalidCommit as e:
            log.error("cannot build the commit of height %d (%s): waiting for sync", self.height, e)
            self._decision = None
            return
        self._commit_block(decision.height, block, commit)
        self._cancel_timers()  # the height's timeouts are moot now
        self._put_later(self.timeouts.commit_ms / 1000, _StartNext(decision.height + 1))

    def _put_later(self, delay: float, item: _Item) -> None:
        self._timers.append(self.clock.call_later(delay, lambda: self._put_nowait(item)))

    def _commit_block(self, height: int, block: bytes, commit: Commit) -> None:
        started = time.perf_counter()
        self.app.commit(height, block, commit)  # Divergence propagates: fatal
        _log_slow("app.commit", height, started)
        self.wal.write_end_height(height)
        self._committed_height = height
        self._last_commit = commit
        log.info("committed height %d (round %d)", height, commit.round)
        for listener in self._commit_listeners:
            listener(height, block, commit)

    def _apply_synced_blocks(self) -> int:
        applied = 0
        while True:
            height = self.app.height() + 1
            found = self.sync.take(height)
            if found is None:
                return applied
            peer_id, block, commit = found
            vals = self._vals if height == self.height and self._vals else None
            vals = vals or self.app.validators(height)
            try:
                commit.verify(self.chain_id, vals, height=height)
            except InvalidCommit as e:
                self.sync.reject(height, peer_id, f"invalid commit for height {height}: {e}")
                continue
            checked = self._check_block(height, block)
            if checked != commit.block_hash:
                self.sync.reject(height, peer_id, f"block {height} does not match its commit")
                continue
            self._commit_block(height, block, commit)
            applied += 1

    def _check_block(self, height: int, block: bytes) -> bytes | None:
        started = time.perf_counter()
        try:
            return self.app.check(height, block)
        except Exception:
            log.exception("app.check(%d) failed", height)
            return None
        finally:
            _log_slow("app.check", height, started, f" ({len(block)} bytes)")

    # ------------------------------------------------------------------ peer messages

    def _ban(self, peer_id: str, reason: str) -> None:
        log.warning("banning %s: %s", peer_id, reason)
        if self.switch is not None:
            self.switch.ban(peer_id, reason)

    def _on_peer_input(self, item: _PeerInput) -> None:
        message = item.message
        if isinstance(message, Status):
            self._on_status(item.peer_id, message)
            return
        if isinstance(message, EvidenceMessage):
            self._on_evidence(item.peer_id, message.evidence)
            return
        height = _message_height(message)
        if height == self.height + 1:
            if len(self._pending) < self.config.max_pending:
                self._pending.append(item)
            return
        if height != self.height:
            return
        if isinstance(message, VoteMessage):
            self._on_vote(item.peer_id, message.vote)
        else:
            self._on_proposal(item.peer_id, message)

    def _on_vote(self, peer_id: str, vote: Vote) -> None:
        store, vals = self._store, self._vals
        assert store is not None and vals is not None
        if store.has_vote(vote):
            return
        member = vals.get(vote.validator)
        if member is None:
            self._ban(peer_id, f"vote from non-validator {vote.validator.hex()}")
            return
        if not verify_vote(member.pub_key, self.chain_id, vote):
            self._ban(peer_id, f"invalid vote signature of {vote.validator.hex()}")
            return
        store.add_vote(vote)
        self._notify_vote(vote)
        self._feed(VoteEvent(vote), encode_wal_vote(vote))

    def _on_proposal(self, peer_id: str, message: ProposalMessage) -> None:
        store, vals = self._store, self._vals
        assert store is not None and vals is not None
        proposal = message.proposal
        if self._committed_height >= self.height:
            return  # decided and committed already: the block cannot be checked any more
        if (proposal.round, proposal.block_hash) in store.proposals:
            return
        member = vals.get(proposal.proposer)
        if member is None:
            self._ban(peer_id, f"proposal from non-validator {proposal.proposer.hex()}")
            return
        if not verify_proposal(member.pub_key, self.chain_id, proposal):
            self._ban(peer_id, "invalid proposal signature")
            return
        if proposal.proposer != vals.proposer(proposal.round):
            log.warning("ignoring proposal by %s: not the proposer", proposal.proposer.hex())
            return
        if store.proposal_count(proposal.round) >= MAX_PROPOSALS_PER_ROUND:
            return
        checked = self._check_block(proposal.height, message.block)
        if checked is not None and checked != proposal.block_hash:
            self._ban(peer_id, "block does not match the signed proposal")
            return
        valid = checked == proposal.block_hash
        if valid:
            store.blocks[proposal.block_hash] = message.block
            for part in encode_wal_block(proposal.block_hash, message.block):
                self.wal.write(part)
        store.add_proposal(proposal, valid)
        self._feed(ProposalEvent(proposal, valid), encode_wal_proposal(proposal, valid))

    # ------------------------------------------------------------------ gossip

    def _status(self) -> Status:
        store, state = self._store, self.state
        assert store is not None and state is not None
        return Status(
            height=self.height,
            round=state.round,
            step=state.step,
            app_height=self.app.height(),
            proposals=tuple(sorted(store.proposals)),
            votes=store.vote_bits(),
        )

    async def _gossip_loop(self) -> None:
        assert self.switch is not None
        while not self._stopped.is_set():
            if self._store is not None:
                self.switch.broadcast(STATE_CHANNEL, encode_message(self._status()))
            await asyncio.sleep(self.config.gossip_interval)

    def _on_status(self, peer_id: str, status: Status) -> None:
        state = self._peers.get(peer_id)
        if state is None:
            return
        state.update(status)
        self.sync.set_peer_height(peer_id, status.app_height)
        if status.height == self.height:
            self._send_missing(peer_id, state, status)

    def _send_missing(self, peer_id: str, state: _PeerState, status: Status) -> None:
        store = self._store
        assert store is not None and self.switch is not None
        now = self.clock.time()
        resend = self.config.resend_after
        have = set(status.proposals)
        for (round, block_hash), (proposal, valid) in store.proposals.items():
            key: tuple[Any, ...] = ("p", round, block_hash)
            if not valid or (round, block_hash) in have or now - state.sent.get(key, -1e9) < resend:
                continue
            block = store.blocks.get(block_hash)
            if block is None:
                continue
            payload = encode_message(ProposalMessage(proposal, block))
            if self.switch.send(peer_id, PROPOSAL_CHANNEL, payload):
                state.sent[key] = now
        bits = {(vb.round, vb.type): vb.bits for vb in status.votes}
        for (round, vote_type), by_validator in store.votes.items():
            peer_bits = bits.get((round, vote_type), b"")
            for validator, vote in by_validator.items():
                index = store.index[validator]
                key = ("v", round, vote_type, index)
                if has_bit(peer_bits, index) or now - state.sent.get(key, -1e9) < resend:
                    continue
                if self.switch.send(peer_id, VOTE_CHANNEL, encode_message(VoteMessage(vote))):
                    state.sent[key] = now

    # ------------------------------------------------------------------ channel handlers

    def _peer_added(self, peer: Peer) -> None:
        self._peers[peer.node_id] = _PeerState()
        if self.switch is not None and EVIDENCE_CHANNEL in peer.channels:
            oldest = self.height - self.config.evidence_max_age
            for evidence in list(self._recent_evidence.values()):
                if evidence.height >= oldest:
                    payload = encode_message(EvidenceMessage(evidence))
                    self.switch.send(peer.node_id, EVIDENCE_CHANNEL, payload)

    def _peer_removed(self, peer: Peer) -> None:
        self._peers.pop(peer.node_id, None)
        self.sync.remove_peer(peer.node_id)

    async def _enqueue(self, peer_id: str, message: _PeerMessage) -> None:
        if not self._stopped.is_set():
            await self._queue.put(_PeerInput(peer_id, message))

    async def _receive_state(self, peer: Peer, payload: bytes) -> None:
        await self._enqueue(peer.node_id, _decode(decode_status, payload))

    async def _receive_proposal(self, peer: Peer, payload: bytes) -> None:
        limit = self.config.max_block_bytes
        await self._enqueue(
            peer.node_id, _decode(lambda p: decode_proposal_message(p, limit), payload)
        )

    async def _receive_vote(self, peer: Peer, payload: bytes) -> None:
        await self._enqueue(peer.node_id, _decode(decode_vote_message, payload))

    async def _receive_evidence(self, peer: Peer, payload: bytes) -> None:
        await self._enqueue(peer.node_id, _decode(decode_evidence_message, payload))


def _decode(decoder: Callable[[bytes], Any], payload: bytes) -> Any:
    try:
        return decoder(payload)
    except MalformedMessage as e:
        raise PeerMisbehavior(f"malformed consensus message: {e}") from e
