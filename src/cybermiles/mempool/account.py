"""Per-sender bookkeeping: one ``SenderTxs`` per address with pooled transactions.

Rules:

* ``base`` is the next nonce the chain expects from the sender (state nonce, possibly
  advanced early by ``remove_included``). No pooled nonce is below ``base``.
* The *pending* transactions are the ``pending`` contiguous nonces ``base .. base+pending-1``;
  every other pooled transaction is *queued* (behind a gap). Hence ``base + pending`` is never
  a pooled nonce.
* At most one transaction per nonce; ``nonces`` is the sorted list of pooled nonces.
* ``free`` counts pooled free (below ``min_gas_price``) transactions, for the free quota.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass

from cybermiles.chain.transactions import Transaction


@dataclass(slots=True, eq=False)
class Entry:
    """A pooled transaction with what the pool needs at hand."""

    tx: Transaction
    seq: int  # arrival order, unique and increasing: the deterministic tie-breaker
    price: int  # effective gas price
    free: bool


class SenderTxs:
    """The pooled transactions of one sender, with pending/queued split."""

    __slots__ = ("base", "evict_key", "free", "nonces", "pending", "sender", "txs")

    def __init__(self, sender: bytes, base: int) -> None:
        self.sender = sender
        self.base = base
        self.txs: dict[int, Entry] = {}
        self.nonces: list[int] = []
        self.pending = 0
        self.free = 0
        self.evict_key: tuple[int, int, int, bytes] | None = None

    def __len__(self) -> int:
        return len(self.txs)

    def is_pending(self, nonce: int) -> bool:
        return self.base <= nonce < self.base + self.pending

    def would_be_pending(self, nonce: int) -> bool:
        """True if a tx with ``nonce`` is or would become pending once inserted."""
        return self.base <= nonce <= self.base + self.pending

    def tail(self) -> Entry:
        return self.txs[self.nonces[-1]]

    def pending_entries(self) -> list[Entry]:
        txs, base = self.txs, self.base
        return [txs[base + i] for i in range(self.pending)]

    def queued_entries(self) -> list[Entry]:
        txs = self.txs
        return [txs[n] for n in self.nonces[self.pending :]]

    def insert(self, entry: Entry) -> tuple[Entry | None, list[Entry]]:
        """Add or replace ``entry``; return (replaced entry, entries newly made pending).

        The newly pending list includes ``entry`` itself when it lands in the pending set.
        """
        nonce = entry.tx.nonce
        txs = self.txs
        old = txs.get(nonce)
        txs[nonce] = entry
        self.free += entry.free
        if old is not None:
            self.free -= old.free
            return old, [entry] if self.is_pending(nonce) else []
        nonces = self.nonces
        if not nonces or nonce > nonces[-1]:
            nonces.append(nonce)
        else:
            insort(nonces, nonce)
        if nonce != self.base + self.pending:
            return None, []
        self.pending += 1
        if nonce + 1 not in txs:
            return None, [entry]
        return None, [entry, *self._extend()]

    def remove(self, nonce: int) -> Entry:
        """Remove the tx at ``nonce``; later pending txs become queued."""
        entry = self.txs.pop(nonce)
        del self.nonces[bisect_left(self.nonces, nonce)]
        self.free -= entry.free
        if nonce < self.base + self.pending:
            self.pending = nonce - self.base
        return entry

    def advance(self, new_base: int) -> tuple[list[Entry], list[Entry]]:
        """Set the expected nonce to ``new_base`` (up or down); return (dropped, newly pending).

        Dropped are all txs with nonce < ``new_base``.
        """
        dropped: list[Entry] = []
        cut = bisect_left(self.nonces, new_base)
        if cut:
            for nonce in self.nonces[:cut]:
                entry = self.txs.pop(nonce)
                self.free -= entry.free
                dropped.append(entry)
            del self.nonces[:cut]
        end = self.base + self.pending
        self.pending = end - new_base if self.base <= new_base <= end else 0
        self.base = new_base
        return dropped, self._extend()

    def _extend(self) -> list[Entry]:
        """Grow the pending run over queued txs that became contiguous; return them."""
        txs = self.txs
        nxt = self.base + self.pending
        grown: list[Entry] = []
        while (entry := txs.get(nxt)) is not None:
            grown.append(entry)
            nxt += 1
        self.pending += len(grown)
        return grown
