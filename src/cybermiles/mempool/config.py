"""Transaction-pool parameters.

All limits are counted in transactions (one slot per tx, whatever its size); sizes in bytes;
prices in wei per gas. A transaction paying less than ``min_gas_price`` is a *free*
transaction and is only admitted under the per-sender ``free_tx_quota`` (see ``pricing``).
"""

from __future__ import annotations

from dataclasses import dataclass

from cybermiles.chain.transactions import MAX_TX_SIZE

GWEI = 10**9


@dataclass(frozen=True, slots=True)
class MempoolConfig:
    """Pool limits; every field has a default so tests and the node override only what they need.

    ``free_tx_quota`` defaults to 0 (free transactions disabled) so a misconfigured node never
    admits unpaid transactions; the node must pass the chain parameter.
    """

    min_gas_price: int = GWEI
    free_tx_quota: int = 0
    block_gas_limit: int = 30_000_000
    max_tx_size: int = MAX_TX_SIZE
    global_slots: int = 100_000
    account_slots: int = 5_000
    price_bump_percent: int = 10

    def __post_init__(self) -> None:
        for name in (
            "min_gas_price",
            "free_tx_quota",
            "block_gas_limit",
            "max_tx_size",
            "price_bump_percent",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"MempoolConfig.{name} must be >= 0")
        for name in ("global_slots", "account_slots"):
            if getattr(self, name) < 1:
                raise ValueError(f"MempoolConfig.{name} must be >= 1")
