"""The transaction pool: admission, pending/queued bookkeeping, eviction, block selection.

Admission (``Mempool.add``) checks, in this order, raising the ``errors`` leaf named:

1. same hash already pooled                              -> AlreadyKnown
2. ``len(tx.raw) > max_tx_size``                         -> OversizedData
3. ``tx.gas > block_gas_limit``                          -> ExceedsBlockGasLimit
4. tip above fee cap                                     -> TipAboveFeeCap
5. nonce below the sender's next nonce                   -> NonceTooLow
6. gas below intrinsic gas / EIP-7623 floor              -> IntrinsicGasTooLow / FloorDataGasTooLow
7. free tx (see ``pricing``) that is not a plain transfer
   or exceeds the sender's free quota                    -> Underpriced
8. balance < gas * max_fee_per_gas + value               -> InsufficientFunds
9. same sender+nonce pooled, fees not bumped enough      -> ReplacementUnderpriced
10. new nonce while the sender has ``account_slots`` txs -> AccountLimitExceeded
11. new tx while the pool has ``global_slots`` txs: evict the eviction candidate if the new tx
    pays strictly more, else                             -> TxPoolFull (FutureReplacePending
    when a queued tx would have to push out a pending one)

A nonce above the next expected one is not an error: the tx is *queued* until the gap fills.

Eviction candidates are the *tail* (highest-nonce tx) of each sender, so evicting never opens
a gap in anyone's pending run. The candidate is the tail with the lowest effective price;
ties go to queued tails first, then to the most recently arrived. Candidates are kept in a
lazily invalidated min-heap keyed ``(price, is_pending, -seq, sender)``: each sender stores its
current key, and heap entries that no longer match it are stale. The heap is built when the
cap is first hit and dropped when the pool falls below 3/4 of the cap, so uncongested adds
pay nothing for it.

Free quota: a free tx is admitted while ``state.free_txs_used(sender)`` plus the sender's
free txs already pooled (excluding one being replaced) is below ``free_tx_quota``.

Complexity: ``add`` O(log n) (plus O(k) for promoting k queued txs);
``select`` O(S log S + N log S) for S pending senders and N selected txs.
All public methods hold one ``threading.Lock``; the ``on_added`` listener is called after the
lock is released, once for every tx that enters the pending set (directly or by promotion).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from heapq import heapify, heappop, heappush

from cybermiles.chain.transactions import TX_GAS, Transaction, floor_data_gas, intrinsic_gas

from .account import Entry, SenderTxs
from .api import StateReader
from .config import MempoolConfig
from .errors import (
    AccountLimitExceeded,
    AlreadyKnown,
    ExceedsBlockGasLimit,
    FloorDataGasTooLow,
    FutureReplacePending,
    InsufficientFunds,
    IntrinsicGasTooLow,
    NonceTooLow,
    OversizedData,
    ReplacementUnderpriced,
    TipAboveFeeCap,
    TxPoolFull,
    Underpriced,
)
from .ordering import select_by_price_and_nonce
from .pricing import effective_gas_price, is_plain_transfer_shape, max_cost, replacement_ok

log = logging.getLogger(__name__)

Listener = Callable[[Transaction], None]
EvictKey = tuple[int, int, int, bytes]


class Mempool:
    """Thread-safe pool of valid-looking transactions waiting for inclusion."""

    def __init__(
        self,
        config: MempoolConfig,
        state: StateReader,
        on_added: Listener | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.on_added: Listener | None = on_added
        self._lock = threading.Lock()
        self._by_hash: dict[bytes, Entry] = {}
        self._accounts: dict[bytes, SenderTxs] = {}
        # Eviction candidates; None while the pool is far from full (see _activate_eviction).
        self._evict_heap: list[EvictKey] | None = None
        self._seq = 0

    # ------------------------------------------------------------------ admission

    def add(self, tx: Transaction) -> None:
        """Admit ``tx`` or raise a ``MempoolError`` leaf (see the module docstring)."""
        promoted: list[Entry] = []
        try:
            with self._lock:
                self._add(tx, promoted)
        finally:  # catching up with the state may promote txs even when ``tx`` is refused
            self._notify(promoted)

    def _add(self, tx: Transaction, promoted: list[Entry]) -> None:
        """Admission under the lock; appends every tx that entered the pending set."""
        cfg = self.config
        if tx.hash in self._by_hash:
            raise AlreadyKnown
        if len(tx.raw) > cfg.max_tx_size:
            raise OversizedData(f"transaction size {len(tx.raw)}, limit {cfg.max_tx_size}")
        if tx.gas > cfg.block_gas_limit:
            raise ExceedsBlockGasLimit
        if tx.max_priority_fee_per_gas > tx.max_fee_per_gas:
            raise TipAboveFeeCap
        sender = tx.sender
        state = self.state
        acct = self._accounts.get(sender)
        next_nonce = state.get_nonce(sender)
        if acct is not None:
            if next_nonce > acct.base:  # the head moved on without a reset: catch up
                promoted += self._advance(acct, next_nonce)
                acct = self._accounts.get(sender)
            if acct is not None:
                next_nonce = max(next_nonce, acct.base)
        if tx.nonce < next_nonce:
            raise NonceTooLow(f"next nonce {next_nonce}, tx nonce {tx.nonce}")
        if tx.data or tx.to is None or tx.access_list or tx.authorization_list:
            intrinsic = intrinsic_gas(tx)
        else:
            intrinsic = TX_GAS  # plain transfer: skip the general computation
        if tx.gas < intrinsic:
            raise IntrinsicGasTooLow(f"gas {tx.gas}, minimum needed {intrinsic}")
        if tx.data:  # without data the floor is 21000, never above intrinsic gas
            floor = floor_data_gas(tx)
            if tx.gas < floor:
                raise FloorDataGasTooLow(f"gas {tx.gas}, minimum needed {floor}")
        old = acct.txs.get(tx.nonce) if acct is not None else None
        price = effective_gas_price(tx)
        free = price < cfg.min_gas_price
        if free:
            self._check_free(tx, price, acct, old)
        balance = state.get_balance(sender)
        cost = max_cost(tx)
        if balance < cost:
            raise InsufficientFunds(f"balance {balance}, tx cost {cost}, overshot {cost - balance}")
        if old is not None:
            if not replacement_ok(old.tx, tx, cfg.price_bump_percent):
                raise ReplacementUnderpriced
        else:
            if acct is not None and len(acct) >= cfg.account_slots:
                raise AccountLimitExceeded(f"pooled {len(acct)} txs")
            if len(self._by_hash) >= cfg.global_slots:
                pending = acct.would_be_pending(tx.nonce) if acct else tx.nonce == next_nonce
                self._make_room(tx, price, pending)
                acct = self._accounts.get(sender)
        self._seq += 1
        entry = Entry(tx, self._seq, price, free)
        if acct is None:
            acct = self._accounts[sender] = SenderTxs(sender, next_nonce)
        replaced, now_pending = acct.insert(entry)
        if replaced is not None:
            del self._by_hash[replaced.tx.hash]
        self._by_hash[tx.hash] = entry
        self._touch(acct)
        promoted += now_pending

    def _check_free(
        self, tx: Transaction, price: int, acct: SenderTxs | None, old: Entry | None
    ) -> None:
        cfg = self.config
        to = tx.to
        if to is None or not is_plain_transfer_shape(tx) or self.state.has_code(to):
            raise Underpriced(
                f"gas price {price} below minimum {cfg.min_gas_price} and not a plain transfer"
            )
        pooled = 0
        if acct is not None:
            pooled = acct.free - (1 if old is not None and old.free else 0)
        used = self.state.free_txs_used(tx.sender) + pooled
        if used >= cfg.free_tx_quota:
            raise Underpriced(
                f"gas price {price} below minimum {cfg.min_gas_price} "
                f"and free quota used ({used} of {cfg.free_tx_quota})"
            )

    def _make_room(self, tx: Transaction, price: int, pending: bool) -> None:
        """The pool is full: evict the eviction candidate for ``tx`` or raise TxPoolFull.

        ``pending`` tells whether ``tx`` would enter the pending set.
        """
        key = self._peek_victim()
        if key is None:
            raise TxPoolFull
        victim_price, victim_pending, _, victim_sender = key
        if price <= victim_price:
            raise TxPoolFull(f"gas price {price} not above cheapest evictable {victim_price}")
        victim_acct = self._accounts[victim_sender]
        victim_nonce = victim_acct.nonces[-1]
        if victim_sender == tx.sender and victim_nonce < tx.nonce:
            raise TxPoolFull("cheapest evictable tx is an earlier nonce of the same sender")
        if victim_pending and not pending:
            raise FutureReplacePending
        self._remove_entry(victim_acct, victim_nonce)

    # ------------------------------------------------------------------ block lifecycle

    def select(self, gas_limit: int, max_count: int | None = None) -> list[Transaction]:
        """Block candidate: pending txs by price across senders, nonce order within one."""
        if max_count is not None and max_count < 0:
            raise ValueError("max_count must be >= 0")
        with self._lock:
            return select_by_price_and_nonce(self._accounts, gas_limit, max_count)

    def remove_included(self, txs: Iterable[Transaction]) -> None:
        """Forget txs included in a committed block, and every tx their nonces made stale."""
        with self._lock:
            next_nonces: dict[bytes, int] = {}
            for tx in txs:
                if next_nonces.get(tx.sender, -1) <= tx.nonce:
                    next_nonces[tx.sender] = tx.nonce + 1
            promoted: list[Entry] = []
            for sender, nonce in next_nonces.items():
                acct = self._accounts.get(sender)
                if acct is not None and nonce > acct.base:
                    promoted += self._advance(acct, nonce)
            self._maybe_deactivate_eviction()
        self._notify(promoted)

    def reset(self) -> None:
        """Re-read every pooled sender's nonce from the new head state.

        Drops txs whose nonce is now below it and promotes queued txs that became
        contiguous. The state is authoritative: the expected nonce may also move down.
        """
        with self._lock:
            promoted: list[Entry] = []
            get_nonce = self.state.get_nonce
            for acct in list(self._accounts.values()):
                nonce = get_nonce(acct.sender)
                if nonce != acct.base:
                    promoted += self._advance(acct, nonce)
            self._maybe_deactivate_eviction()
        self._notify(promoted)

    # ------------------------------------------------------------------ queries

    def get(self, tx_hash: bytes) -> Transaction | None:
        with self._lock:
            entry = self._by_hash.get(tx_hash)
        return entry.tx if entry is not None else None

    def __contains__(self, tx_hash: object) -> bool:
        with self._lock:
            return tx_hash in self._by_hash

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_hash)

    def pending_nonce(self, addr: bytes) -> int:
        """Nonce for eth_getTransactionCount(addr, "pending"): state nonce + pending run."""
        with self._lock:
            nonce = self.state.get_nonce(addr)
            acct = self._accounts.get(addr)
            if acct is None:
                return nonce
            if nonce > acct.base:
                promoted = self._advance(acct, nonce)
                acct = self._accounts.get(addr)
            else:
                promoted = []
            result = nonce if acct is None else max(nonce, acct.base + acct.pending)
        self._notify(promoted)
        return result

    def status(self) -> dict[str, int]:
        """txpool_status: counts of pending and queued txs."""
        with self._lock:
            pending = sum(acct.pending for acct in self._accounts.values())
            return {"pending": pending, "queued": len(self._by_hash) - pending}

    def content(self) -> dict[str, dict[bytes, dict[int, Transaction]]]:
        """txpool_content shape: {"pending": {sender: {nonce: tx}}, "queued": {...}}.

        Senders and nonces are raw (bytes / int); the RPC layer formats them.
        """
        with self._lock:
            pending: dict[bytes, dict[int, Transaction]] = {}
            queued: dict[bytes, dict[int, Transaction]] = {}
            for sender, acct in self._accounts.items():
                if acct.pending:
                    pending[sender] = {e.tx.nonce: e.tx for e in acct.pending_entries()}
                if len(acct) > acct.pending:
                    queued[sender] = {e.tx.nonce: e.tx for e in acct.queued_entries()}
            return {"pending": pending, "queued": queued}

    def pending_txs(self) -> list[Transaction]:
        """All pending txs, grouped by sender in nonce order (senders in first-seen order)."""
        with self._lock:
            return [e.tx for acct in self._accounts.values() for e in acct.pending_entries()]

    def queued_txs(self) -> list[Transaction]:
        """All queued (gapped) txs, grouped by sender in nonce order."""
        with self._lock:
            return [e.tx for acct in self._accounts.values() for e in acct.queued_entries()]

    # ------------------------------------------------------------------ internals

    def _advance(self, acct: SenderTxs, nonce: int) -> list[Entry]:
        dropped, promoted = acct.advance(nonce)
        for entry in dropped:
            del self._by_hash[entry.tx.hash]
        self._touch(acct)
        return promoted

    def _remove_entry(self, acct: SenderTxs, nonce: int) -> None:
        entry = acct.remove(nonce)
        del self._by_hash[entry.tx.hash]
        self._touch(acct)

    def _touch(self, acct: SenderTxs) -> None:
        """Refresh ``acct``'s eviction key after a change; drop the sender if empty."""
        if not acct.txs:
            del self._accounts[acct.sender]
            acct.evict_key = None
            return
        heap = self._evict_heap
        if heap is None:
            return
        key = _evict_key(acct)
        if key != acct.evict_key:
            acct.evict_key = key
            heappush(heap, key)
            if len(heap) > 64 + 4 * len(self._accounts):
                self._activate_eviction()  # rebuild without stale keys

    def _activate_eviction(self) -> None:
        """(Re)build the eviction heap from every sender's current tail: O(S).

        The heap is only maintained while the pool is near its global cap: it is built the
        first time the cap is hit and dropped again once the pool falls below 3/4 of it,
        which keeps the common, uncongested ``add`` path free of heap upkeep.
        """
        heap = []
        for acct in self._accounts.values():
            acct.evict_key = key = _evict_key(acct)
            heap.append(key)
        heapify(heap)
        self._evict_heap = heap

    def _maybe_deactivate_eviction(self) -> None:
        if self._evict_heap is not None and 4 * len(self._by_hash) < 3 * self.config.global_slots:
            self._evict_heap = None

    def _peek_victim(self) -> EvictKey | None:
        if self._evict_heap is None:
            self._activate_eviction()
        heap = self._evict_heap
        assert heap is not None
        accounts = self._accounts
        while heap:
            key = heap[0]
            acct = accounts.get(key[3])
            if acct is not None and acct.evict_key == key:
                return key
            heappop(heap)
        return None

    def _notify(self, promoted: list[Entry]) -> None:
        listener = self.on_added
        if listener is None:
            return
        for entry in promoted:
            try:
                listener(entry.tx)
            except Exception:
                log.exception("mempool on_added listener failed")

    def _check_invariants(self) -> None:
        """Assert internal consistency (tests only; O(n))."""
        total = 0
        for sender, acct in self._accounts.items():
            assert acct.sender == sender and acct.txs, "empty or misfiled sender"
            assert acct.nonces == sorted(acct.txs), "nonce index out of sync"
            assert all(n >= acct.base for n in acct.nonces), "nonce below base"
            for i in range(acct.pending):
                assert acct.base + i in acct.txs, "pending run not contiguous"
            assert acct.base + acct.pending not in acct.txs, "pending run not maximal"
            assert acct.free == sum(e.free for e in acct.txs.values()), "free count"
            assert len(acct) <= self.config.account_slots, "account slots exceeded"
            for nonce, entry in acct.txs.items():
                assert entry.tx.nonce == nonce and entry.tx.sender == sender
                assert self._by_hash.get(entry.tx.hash) is entry, "hash index out of sync"
            if self._evict_heap is not None:
                key = _evict_key(acct)
                assert acct.evict_key == key and key in self._evict_heap, "eviction key stale"
            total += len(acct)
        assert total == len(self._by_hash) <= self.config.global_slots, "size mismatch"


def _evict_key(acct: SenderTxs) -> EvictKey:
    """Eviction order of a sender's tail: cheapest first, then queued, then newest."""
    tail_nonce = acct.nonces[-1]
    tail = acct.txs[tail_nonce]
    return (tail.price, int(tail_nonce < acct.base + acct.pending), -tail.seq, acct.sender)
