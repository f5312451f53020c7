"""Transaction gossip: batch new transactions to every peer that has not seen them yet.

A stop-gap until the mempool reactor exists. Channel ``TX_CHANNEL`` carries one message per
batch: ``RLP([raw_tx, raw_tx, ...])`` with raw txs as in ``eth_sendRawTransaction`` (legacy RLP or
typed envelopes); a tx's id is ``keccak256(raw_tx)``, its Ethereum hash.

Per peer we remember the hashes the peer sent us or we sent it (a bounded :class:`SeenSet`), so a
tx crosses each link at most once in each direction while it stays in the set. Pending txs of a
peer are flushed every ``batch_interval`` seconds in messages of at most ``max_batch_bytes``; a
batch the peer's send queue refuses is dropped (the hashes are not marked as seen).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from cybermiles.chain.rlp_codec import decode_bytes_list, encode_bytes, encode_items
from cybermiles.crypto.keccak import keccak256

from .errors import PeerMisbehavior
from .peers import Peer
from .switch import Switch

log = logging.getLogger("cybermiles.p2p")

TX_CHANNEL = 0x30
DEFAULT_MAX_TX_SIZE = 128 * 1024
DEFAULT_MAX_BATCH_BYTES = 256 * 1024
DEFAULT_SEEN_PER_PEER = 50_000
DEFAULT_PENDING_PER_PEER = 10_000

TxSink = Callable[[Peer, list[bytes]], Awaitable[None]]


class SeenSet:
    """A set that remembers at least the last ``capacity // 2`` and at most ``capacity`` items.

    Two generations: when the current one is full it becomes the old one and the oldest
    generation is forgotten. O(1) per operation, no per-item bookkeeping.
    """

    def __init__(self, capacity: int) -> None:
        self._half = max(1, capacity // 2)
        self._current: set[bytes] = set()
        self._old: set[bytes] = set()

    def __contains__(self, item: bytes) -> bool:
        return item in self._current or item in self._old

    def __len__(self) -> int:
        return len(self._current | self._old)

    def add(self, item: bytes) -> None:
        if item in self._current:
            return
        if len(self._current) >= self._half:
            self._old, self._current = self._current, set()
        self._current.add(item)


class TxGossip:
    """Registers ``TX_CHANNEL`` on ``switch``; call before ``switch.start()``.

    ``on_txs(peer, raw_txs)`` receives the new txs of each batch (those the peer had not sent
    before); it should admit them to the mempool and call :meth:`broadcast_tx` for the valid
    ones. A handler raising PeerMisbehavior bans the peer; a malformed batch bans it too.
    """

    def __init__(
        self,
        switch: Switch,
        on_txs: TxSink,
        *,
        channel_id: int = TX_CHANNEL,
        batch_interval: float = 0.05,
        max_tx_size: int = DEFAULT_MAX_TX_SIZE,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        seen_per_peer: int = DEFAULT_SEEN_PER_PEER,
        pending_per_peer: int = DEFAULT_PENDING_PER_PEER,
    ) -> None:
        if max_tx_size + 18 > max_batch_bytes:
            raise ValueError("max_batch_bytes must hold at least one tx of max_tx_size")
        self.switch = switch
        self.channel_id = channel_id
        self._on_txs = on_txs
        self._interval = batch_interval
        self._max_tx_size = max_tx_size
        self._max_batch = max_batch_bytes
        self._seen_per_peer = seen_per_peer
        self._pending_per_peer = pending_per_peer
        self._seen: dict[str, SeenSet] = {}
        self._pending: dict[str, dict[bytes, bytes]] = {}
        self._task: asyncio.Task[None] | None = None
        switch.register_channel(channel_id, self._receive, max_message_size=max_batch_bytes)
        switch.add_peer_listener(self._peer_added, self._peer_removed)

    # -- peers -------------------------------------------------------------------------------

    def _peer_added(self, peer: Peer) -> None:
        self._seen[peer.node_id] = SeenSet(self._seen_per_peer)
        self._pending[peer.node_id] = {}

    def _peer_removed(self, peer: Peer) -> None:
        self._seen.pop(peer.node_id, None)
        self._pending.pop(peer.node_id, None)

    # -- outgoing ----------------------------------------------------------------------------

    def broadcast_tx(self, raw_tx: bytes, tx_hash: bytes | None = None) -> None:
        """Queue ``raw_tx`` for every peer that has not seen it (it goes out at the next flush)."""
        if len(raw_tx) > self._max_tx_size:
            raise ValueError(f"tx of {len(raw_tx)} bytes > gossip limit {self._max_tx_size}")
        tx_hash = tx_hash or keccak256(raw_tx)
        for node_id, pending in self._pending.items():
            if tx_hash in pending or tx_hash in self._seen[node_id]:
                continue
            if len(pending) < self._pending_per_peer:
                pending[tx_hash] = raw_tx

    def flush(self) -> int:
        """Send every peer its pending txs now; returns the number of txs queued."""
        sent = 0
        for node_id, pending in list(self._pending.items()):
            if not pending:
                continue
            self._pending[node_id] = {}
            seen = self._seen[node_id]
            for batch in _batches(list(pending.items()), self._max_batch):
                payload = encode_items([encode_bytes(raw) for _, raw in batch])
                if not self.switch.send(node_id, self.channel_id, payload):
                    break
                for tx_hash, _ in batch:
                    seen.add(tx_hash)
                sent += len(batch)
        return sent

    def start(self) -> None:
        """Start the periodic flush task."""
        if self._task is None:
            self._task = asyncio.create_task(self._flush_loop(), name="p2p-tx-gossip")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.flush()

    # -- incoming ----------------------------------------------------------------------------

    async def _receive(self, peer: Peer, payload: bytes) -> None:
        try:
            items = decode_bytes_list(payload)  # pyrlp is superlinear on big batches
        except (ValueError, IndexError) as exc:
            raise PeerMisbehavior(f"malformed tx batch: {exc}") from exc
        seen = self._seen.get(peer.node_id)
        if seen is None:
            return
        fresh = []
        for raw in items:
            if not raw or len(raw) > self._max_tx_size:
                raise PeerMisbehavior(f"tx of {len(raw)} bytes in a batch")
            tx_hash = keccak256(raw)
            if tx_hash in seen:
                continue
            seen.add(tx_hash)
            self._pending.get(peer.node_id, {}).pop(tx_hash, None)
            fresh.append(raw)
        if fresh:
            await self._on_txs(peer, fresh)


def _batches(items: list[tuple[bytes, bytes]], max_bytes: int) -> list[list[tuple[bytes, bytes]]]:
    """Split (hash, raw) pairs into groups whose RLP list fits in ``max_bytes``."""
    batches: list[list[tuple[bytes, bytes]]] = []
    current: list[tuple[bytes, bytes]] = []
    size = 9  # the largest RLP list header
    for item in items:
        item_size = len(item[1]) + 9
        if current and size + item_size > max_bytes:
            batches.append(current)
            current, size = [], 9
        current.append(item)
        size += item_size
    if current:
        batches.append(current)
    return batches
