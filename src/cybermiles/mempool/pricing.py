"""Price rules of the pool.

* The chain's base fee is always 0, so what a transaction actually pays per gas (and what
  the block producer earns) is its EIP-1559 effective gas price
  ``min(max_fee_per_gas, 0 + max_priority_fee_per_gas)``, i.e. its tip. For legacy and
  EIP-2930 transactions both fields equal ``gas_price``. ``effective_gas_price`` is the single
  price used for the free-transaction threshold, block ordering and eviction.
* A transaction with ``effective_gas_price < min_gas_price`` is *free*; it is admissible only
  as a plain value transfer (recipient ≥ 0x10000 without code, no data, no access list, not
  EIP-7702: the block executor's rule, ``execution.fees``) and within the sender's free quota
  (checked by the pool, which knows state and pool contents).
* A replacement (same sender and nonce) must raise BOTH ``max_fee_per_gas`` and
  ``max_priority_fee_per_gas`` strictly, and each by at least ``price_bump_percent``
  (geth's ``list.Add``: threshold = old * (100 + bump) // 100).
"""

from __future__ import annotations

from cybermiles.chain.transactions import Transaction
from cybermiles.execution.fees import effective_gas_price, is_plain_transfer_shape

__all__ = ["effective_gas_price", "is_plain_transfer_shape", "max_cost", "replacement_ok"]


def max_cost(tx: Transaction) -> int:
    """Upper bound of what ``tx`` can take from its sender: ``gas * max_fee + value``."""
    return tx.gas * tx.max_fee_per_gas + tx.value


def replacement_ok(old: Transaction, new: Transaction, bump_percent: int) -> bool:
    """geth's replacement rule: both fee fields strictly higher and by >= ``bump_percent``."""
    if (
        new.max_fee_per_gas <= old.max_fee_per_gas
        or new.max_priority_fee_per_gas <= old.max_priority_fee_per_gas
    ):
        return False
    factor = 100 + bump_percent
    return (
        new.max_fee_per_gas >= old.max_fee_per_gas * factor // 100
        and new.max_priority_fee_per_gas >= old.max_priority_fee_per_gas * factor // 100
    )
