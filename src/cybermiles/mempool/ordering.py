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

Cost: O(S log S + N log S) for S senders and N selected txs (the S log S is one C sort).
"""

from __future__ import annotations

from collections.abc import Mapping
from heapq import heappop, heappush, heapreplace

from cybermiles.chain.transactions import Transaction

from .account import Entry, SenderTxs

MIN_TX_GAS = 21_000
# Order key: one int, price descending then arrival ascending: (-price << SEQ_BITS) | seq.
# Plain ints heap and sort much faster than tuples. Arrival numbers stay below 2**48.
SEQ_BITS = 48


def select_by_price_and_nonce(
    accounts: Mapping[bytes, SenderTxs], gas_limit: int, max_count: int | None = None
) -> list[Transaction]:
    """Pick pending txs of ``accounts`` (sender -> txs) for a block of ``gas_limit`` gas.

    Equivalent to popping a max-heap of every sender's next tx, but the senders' first txs
    are sorted once (C speed) and only the follow-up txs of started senders go through a
    heap: the next tx is the better of the first not-yet-started sender and the heap top.
    """
    limit = max_count if max_count is not None else -1
    firsts = [acct.txs[acct.base] for acct in accounts.values() if acct.pending]
    starts = [(-e.price << SEQ_BITS) | e.seq for e in firsts]
    by_key: dict[int, Entry] = dict(zip(starts, firsts, strict=True))
    starts.sort()
    n_starts = len(starts)
    i = 0
    follow: list[int] = []  # heap of the next-tx keys of senders already started
    out: list[Transaction] = []
    take = out.append
    remaining = gas_limit
    count = 0
    while count != limit and remaining >= MIN_TX_GAS:
        if follow and (i == n_starts or follow[0] < starts[i]):
            key = follow[0]
            from_follow = True
        elif i < n_starts:
            key = starts[i]
            i += 1
            from_follow = False
        else:
            break
        tx = by_key[key].tx
        if tx.gas > remaining:  # skip this sender's remaining txs
            if from_follow:
                heappop(follow)
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
            if from_follow:
                heapreplace(follow, key)
            else:
                heappush(follow, key)
        elif from_follow:
            heappop(follow)
    return out
