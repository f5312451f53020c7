"""Dev-mode chain manipulation behind Hardhat's ``evm_*`` / ``hardhat_*`` methods (devnet only).

The chain's invariant holds in dev mode too: every state change belongs to a committed block
with a correct state root, and the block producer's thread is the only chain writer. So:

* Every operation below runs on the producer thread (``BlockProducer.call``), between blocks.
* Mining: :meth:`DevTools.mine` builds one block from the pool's best transactions (empty if
  none); :meth:`DevTools.mine_blocks` builds ``count`` blocks ``interval`` seconds apart, the
  first packing the pool. Automine off (``set_automine(False)``) leaves transactions in the pool
  until a block is mined that way or by the interval timer.
* Time: ``increase_time`` adds to the producer's time offset; ``set_next_timestamp`` fixes the
  next block's timestamp, which must be above the head's; afterwards the offset moves so that
  later blocks continue from it (Hardhat). ``mine(timestamp)`` is the two together.
* State edits (hardhat_setBalance / setCode / setNonce / setStorageAt): not a patch of the head
  state but a new empty block whose :data:`~cybermiles.node.blockchain.StateEdit` is applied at
  its start, so the block number advances by one per edit (a deviation from Hardhat). Its
  timestamp leaves the second chosen by ``set_next_timestamp`` to the next real block whenever
  an earlier second is free. ``set_nonce`` refuses to lower a nonce (Hardhat's rule).
* Snapshots: ``snapshot`` records the head (with the time offset and pending next timestamp)
  under ids 1, 2, ...; ``revert(id)`` rewinds the chain to that head (:func:`rewind_tables`:
  blocks, indexes, receipts, flat state from the reverse diffs, free-transfer counts, head
  pointer, in ONE LMDB write transaction), empties the pool, restores the time settings, and
  deletes that snapshot and every later one. An unknown id answers False. History older than
  the kept window cannot be rewound (``cmt devnet`` runs in archive mode, so it keeps all).
* ``--allow-unlimited-contract-size``: blocks execute with :class:`UnlimitedCodeVMState`
  (no EIP-170 code size or EIP-3860 initcode size limit; EIP-3541 still applies).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import lmdb
import rlp

from cybermiles.chain.database import Database, be64
from cybermiles.chain.header import decode_header, header_hash
from cybermiles.chain.params import Params
from cybermiles.chain.transactions import decode_transaction
from cybermiles.crypto.keccak import keccak256
from cybermiles.execution.fees import free_tx_window, is_free
from cybermiles.state.account import Account
from cybermiles.state.world import HIST_ACCOUNT, WorldState, split_history_keys

if TYPE_CHECKING:
    from cybermiles.mempool import Mempool
    from cybermiles.node.blockchain import Blockchain, BuiltBlock
    from cybermiles.node.producer import BlockProducer

MAX_MINE_BLOCKS = 10_000  # hardhat_mine builds every block for real: bound one request's work


class DevError(ValueError):
    """A dev operation is refused (JSON-RPC -32000 with this message)."""


# --------------------------------------------------------------------------- contract size


def unlimited_code_params(params: Params) -> Params:
    """``params`` with the largest ``max_code_size`` (the executor's initcode check)."""
    return replace(params, max_code_size=2**32)


# --------------------------------------------------------------------------- state edits


def _write_account(
    world: WorldState,
    address: bytes,
    *,
    balance: int | None = None,
    nonce: int | None = None,
    code: bytes | None = None,
) -> None:
    old = world.get_account_or_empty(address)
    code_hash = old.code_hash if code is None else world.put_code(code)
    new = Account(
        old.nonce if nonce is None else nonce,
        old.balance if balance is None else balance,
        old.storage_root,
        code_hash,
    )
    if new.is_empty and world.get_account(address) is None:
        return  # nothing to create: an absent account already reads as empty
    world.set_account(address, new)


def _write_storage(world: WorldState, address: bytes, slot: int, value: int) -> None:
    if world.get_account(address) is None:
        if not value:
            return
        world.set_account(address, Account())  # storage lives in an account
    world.set_storage(address, slot, value)


# --------------------------------------------------------------------------- rewinding


def rewind_tables(
    txn: lmdb.Transaction,
    db: Database,
    *,
    head: int,
    target: int,
    chain_id: int,
    params: Params,
) -> None:
    """Undo blocks ``head`` down to ``target + 1`` inside ``txn`` and make ``target`` the head.

    For each block, newest first: restore the flat accounts and storage it changed from its
    reverse diffs (``histidx`` lists them, ``history`` holds the values before the block) and
    delete those diffs; delete its header, hash entry, body, receipts and transaction index
    entries. Free-transfer counts are corrected (see :func:`_rewind_free_counts`). Code stays
    (content-addressed, harmless). Raises :class:`DevError` before writing anything when the
    history of a block to undo was pruned.
    """
    if not 0 <= target <= head:
        raise DevError(f"cannot rewind to block {target}: the head is block {head}")
    histidx = db[b"histidx"]
    for number in range(target + 1, head + 1):
        if txn.get(be64(number), db=histidx) is None:
            raise DevError(
                f"cannot revert to block {target}: the state history of block {number} is no "
                f"longer kept (run the node in archive mode; `cmt devnet` does)"
            )
    freed: Counter[bytes] = Counter()
    for number in range(head, target, -1):
        _undo_state(txn, db, number)
        for sender in _delete_block(txn, db, number, chain_id, params):
            freed[sender] += 1
    _rewind_free_counts(txn, db, freed, head=head, target=target, chain_id=chain_id, params=params)
    txn.put(b"head", be64(target), db=db[b"meta"])


def _undo_state(txn: lmdb.Transaction, db: Database, number: int) -> None:
    key = be64(number)
    histidx, history = db[b"histidx"], db[b"history"]
    accounts, storage = db[b"accounts"], db[b"storage"]
    for hkey in split_history_keys(txn.get(key, db=histidx) or b""):
        old = txn.get(hkey, db=history)
        if old is None:
            raise DevError(f"state history of block {number} is incomplete")
        flat = hkey[1:-8]  # kind byte + flat-store key + be64(number)
        table = accounts if hkey[:1] == HIST_ACCOUNT else storage
        if old:
            txn.put(flat, old, db=table)
        else:
            txn.delete(flat, db=table)  # absent account / zero slot before the block
        txn.delete(hkey, db=history)
    txn.delete(key, db=histidx)


def _body(txn: lmdb.Transaction, db: Database, number: int) -> list[tuple[bytes, bytes]]:
    raw = txn.get(be64(number), db=db[b"bodies"])
    return [] if raw is None else [(tx_raw, sender) for tx_raw, sender in rlp.decode(raw)]


def _free_senders(body: list[tuple[bytes, bytes]], chain_id: int, params: Params) -> list[bytes]:
    """Senders of the free transfers in a block body (the executor counted one each)."""
    out = []
    for raw, sender in body:
        if is_free(decode_transaction(raw, chain_id, known_sender=sender), params):
            out.append(sender)
    return out


def _delete_block(
    txn: lmdb.Transaction, db: Database, number: int, chain_id: int, params: Params
) -> list[bytes]:
    """Delete block ``number`` and its indexes; return the senders of its free transfers."""
    key = be64(number)
    raw_header = txn.get(key, db=db[b"headers"])
    if raw_header is not None:
        txn.delete(header_hash(decode_header(raw_header)), db=db[b"hashes"])
        txn.delete(key, db=db[b"headers"])
    body = _body(txn, db, number)
    txindex = db[b"txindex"]
    for raw, _ in body:
        txn.delete(keccak256(raw), db=txindex)
    txn.delete(key, db=db[b"bodies"])
    txn.delete(key, db=db[b"receipts"])
    return _free_senders(body, chain_id, params)


def _delete_from(txn: lmdb.Transaction, table: Any, start: bytes) -> None:
    """Delete every key >= ``start`` in ``table``."""
    cursor = txn.cursor(db=table)
    if cursor.set_range(start):
        while cursor.delete():
            pass


def _rewind_free_counts(
    txn: lmdb.Transaction,
    db: Database,
    freed: Counter[bytes],
    *,
    head: int,
    target: int,
    chain_id: int,
    params: Params,
) -> None:
    """Make the ``freetx`` table what committing blocks up to ``target`` left.

    The table holds counts of the head's window only (each block drops the previous window).
    Same window: subtract the rewound blocks' free transfers. Rewound across a window start:
    the target window's counts are gone, so drop everything and recount its blocks.
    """
    table = db[b"freetx"]
    window = free_tx_window(target, params)
    prefix = be64(window)
    if free_tx_window(head, params) == window:
        for sender in sorted(freed):
            raw = txn.get(prefix + sender, db=table)
            left = (int.from_bytes(raw, "big") if raw else 0) - freed[sender]
            if left > 0:
                txn.put(prefix + sender, left.to_bytes(4, "big"), db=table)
            else:
                txn.delete(prefix + sender, db=table)
        return
    _delete_from(txn, table, prefix)
    counts: Counter[bytes] = Counter()
    for number in range(max(1, window * params.free_tx_window), target + 1):
        counts.update(_free_senders(_body(txn, db, number), chain_id, params))
    for sender in sorted(counts):
        txn.put(prefix + sender, counts[sender].to_bytes(4, "big"), db=table)


# --------------------------------------------------------------------------- the tools


@dataclass(frozen=True, slots=True)
class _Snapshot:
    head: int
    time_offset: int
    next_timestamp: int | None


class DevTools:
    """The dev operations of one node; each runs on the block producer's thread."""

    def __init__(self, chain: Blockchain, mempool: Mempool, producer: BlockProducer) -> None:
        self.chain = chain
        self.mempool = mempool
        self.producer = producer
        self._snapshots: dict[int, _Snapshot] = {}
        self._next_id = 1
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ mining and time

    def _check_timestamp(self, timestamp: int) -> None:
        head = self.chain.head.timestamp
        if timestamp <= head:
            raise DevError(
                f"Timestamp {timestamp} is lower than or equal to previous block's timestamp {head}"
            )

    def mine(self, timestamp: int | None = None) -> BuiltBlock:
        """Mine one block with the pool's best transactions, at ``timestamp`` if given."""

        def run() -> BuiltBlock:
            if timestamp is not None:
                self._check_timestamp(timestamp)
                self.producer.next_timestamp = timestamp
            return self.producer.produce(self.producer.max_block_txs)

        return self.producer.call(run)

    def mine_blocks(self, count: int, interval: int) -> None:
        """Mine ``count`` blocks ``interval`` seconds apart; the first packs the pool."""
        if not 1 <= count <= MAX_MINE_BLOCKS:
            raise DevError(f"block count must be between 1 and {MAX_MINE_BLOCKS}, got {count}")
        if interval < 1:
            raise DevError("interval must be at least 1 second (timestamps strictly increase)")

        def run() -> None:
            producer = self.producer
            first = producer.produce(producer.max_block_txs)
            timestamp = first.header.timestamp
            for _ in range(count - 1):
                timestamp += interval
                producer.produce(0, timestamp=timestamp)
            last = self.chain.head.timestamp
            if last > producer.clock_time():
                producer.time_offset = last - int(producer.clock())

        self.producer.call(run)

    def set_automine(self, enabled: bool) -> None:
        self.producer.set_automine(enabled)

    def increase_time(self, seconds: int) -> int:
        """Add ``seconds`` to the time offset; return the new total offset."""
        if seconds < 0:
            raise DevError("evm_increaseTime: seconds must not be negative")

        def run() -> int:
            self.producer.time_offset += seconds
            return self.producer.time_offset

        return self.producer.call(run)

    def set_next_timestamp(self, timestamp: int) -> None:
        def run() -> None:
            self._check_timestamp(timestamp)
            self.producer.next_timestamp = timestamp

        self.producer.call(run)

    # ------------------------------------------------------------------ state edits

    def _edit_timestamp(self) -> int:
        """A timestamp for an edit block that leaves ``next_timestamp`` to the next block."""
        producer = self.producer
        wanted = producer.next_timestamp
        if wanted is None:
            return producer.clock_time()
        if wanted - self.chain.head.timestamp >= 2:
            return min(producer.clock_time(), wanted - 1)
        return producer.block_timestamp()  # no earlier second is free: this block takes it

    def _edit(self, edit: Callable[[WorldState], None], check: Callable[[], None] | None) -> None:
        def run() -> None:
            if check is not None:
                check()
            self.producer.produce(0, timestamp=self._edit_timestamp(), state_edit=edit)

        self.producer.call(run)

    def set_balance(self, address: bytes, balance: int) -> None:
        self._edit(lambda world: _write_account(world, address, balance=balance), None)

    def set_code(self, address: bytes, code: bytes) -> None:
        self._edit(lambda world: _write_account(world, address, code=code), None)

    def set_nonce(self, address: bytes, nonce: int) -> None:
        def check() -> None:
            with self.chain.state_at() as state:
                current = state.get_nonce(address)
            if nonce < current:
                raise DevError(
                    f"New nonce ({nonce}) must not be smaller than the existing nonce ({current})"
                )

        self._edit(lambda world: _write_account(world, address, nonce=nonce), check)

    def set_storage_at(self, address: bytes, slot: int, value: int) -> None:
        self._edit(lambda world: _write_storage(world, address, slot, value), None)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> int:
        """Record the head; return the snapshot's id (1, 2, ...)."""

        def run() -> int:
            with self._lock:
                snapshot_id = self._next_id
                self._next_id += 1
                self._snapshots[snapshot_id] = _Snapshot(
                    self.chain.head.block_number,
                    self.producer.time_offset,
                    self.producer.next_timestamp,
                )
            return snapshot_id

        return self.producer.call(run)

    def revert(self, snapshot_id: int) -> bool:
        """Rewind to snapshot ``snapshot_id``; False if there is no such snapshot."""

        def run() -> bool:
            with self._lock:
                snap = self._snapshots.get(snapshot_id)
                if snap is None:
                    return False
                for later in [i for i in self._snapshots if i >= snapshot_id]:
                    del self._snapshots[later]
            self.chain.rewind_to(snap.head)
            self._clear_pool()
            self.producer.time_offset = snap.time_offset
            self.producer.next_timestamp = snap.next_timestamp
            return True

        return self.producer.call(run)

    def _clear_pool(self) -> None:
        pool = self.mempool
        pool.remove_included(pool.pending_txs() + pool.queued_txs())
        pool.reset()
