"""Block-candidate selection: geth's ``TransactionsByPriceAndNonce``.

Rules:

* Only pending transactions; each sender's in nonce order (a sender's next tx becomes
  eligible only after its previous one was taken).
* Across senders, the highest effective gas price first (base fee is 0, so the effective
  tip is the effective gas price); equal prices go by arrival order (``seq``).
* A tx whose gas exceeds the remaining gas is skipped together with all later txs of its
  sender, and selection continues with the other senders.
* Selection stops at ``max_count`` txs or when less than 21000 gas (the cheapest
  possible transaction) remains.

Cost: O(S + N log S) for S senders and N selected txs.
"""

from __future__ import annotations

from collections.abc import Mapping
from heapq import heapify, heappop, heapreplace

from cybermiles.chain.transactions import Transaction

from .account import Entry, SenderTxs

MIN_TX_GAS = 21_000
SEQ_BITS = 48  # arrival numbers stay below 2**48 (~2.8e14 transactions)


def order_key(entry: Entry) -> int:
    """One int sorting by price descending, then arrival ascending (ints heap fastest)."""
    return (-entry.price << SEQ_BITS) | entry.seq


def select_by_price_and_nonce(
    accounts: Mapping[bytes, SenderTxs], gas_limit: int, max_count: int | None = None
) -> list[Transaction]:
    """Pick pending txs of ``accounts`` (sender -> txs) for a block of ``gas_limit`` gas."""
    limit = max_count if max_count is not None else -1
    firsts = [acct.txs[acct.base] for acct in accounts.values() if acct.pending]
    heads = [(-e.price << SEQ_BITS) | e.seq for e in firsts]
    by_key: dict[int, Entry] = dict(zip(heads, firsts, strict=True))
    heapify(heads)
    out: list[Transaction] = []
    take = out.append
    remaining = gas_limit
    count = 0
    while heads and count != limit and remaining >= MIN_TX_GAS:
        tx = by_key[heads[0]].tx
        if tx.gas > remaining:
            heappop(heads)  # skip this sender's remaining txs
            continue
        take(tx)
        count += 1
        remaining -= tx.gas
        acct = accounts[tx.sender]
        nonce = tx.nonce + 1
        if nonce < acct.base + acct.pending:
            nxt = acct.txs[nonce]
            key = (-nxt.price << SEQ_BITS) | nxt.seq
            by_key[key] = nxt
            heapreplace(heads, key)
        else:
            heappop(heads)
    return out
