"""Chain parameters: set in genesis, kept in the state, changed by governance.

Defaults: ``min_gas_price`` 1 gwei makes an ERC20 transfer (~35-50k gas) cost ~5e-5 CMT; a plain
transfer priced below it is free within ``free_tx_quota`` transfers per sender per
``free_tx_window`` blocks (anti-spam). The staking and governance parameters keep CyberMiles
mainnet's names and values; ratios are basis points (1/10,000). ``docs/staking.md`` has the table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from cybermiles.chain.errors import GenesisError

GWEI = 10**9
CMT = 10**18  # wei per CMT
WAD = 10**18  # comp rates: 18-decimal fixed point, 1e18 = 100%
MAX_UINT64 = 2**64 - 1
BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class Params:
    min_gas_price: int = 1 * GWEI
    free_tx_quota: int = 1000
    free_tx_window: int = 8640
    block_gas_limit: int = 200_000_000
    max_tx_size: int = 128 * 1024
    max_code_size: int = 24_576
    # staking
    max_vals: int = 19
    backup_vals: int = 5
    epoch_blocks: int = 100
    self_staking_ratio: int = 1000
    min_staking_amount: int = 1000 * CMT
    validator_size_threshold: int = 1200
    unstake_waiting_period: int = 60480
    inflation_rate: int = 800
    blocks_per_year: int = 3_153_600
    validators_block_award_ratio: int = 9000
    community_pool_ratio: int = 500
    max_slash_blocks: int = 12
    slash_ratio: int = 10
    slash_enabled: int = 0
    jail_period: int = 8640
    verifier: int = 0  # an address, as an integer
    # governance
    proposal_expire_period: int = 60480
    proposal_deposit: int = 100 * CMT

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    def replace(self, **changes: int) -> Params:
        """A copy with ``changes`` applied, each range-checked (``ValueError`` names it)."""
        for name, value in changes.items():
            check_param(name, value)
        values = asdict(self)
        values.update(changes)
        return Params(**values)


_LIMITS: dict[str, tuple[int, int]] = {
    "min_gas_price": (0, 2**256 - 1),
    "free_tx_quota": (0, MAX_UINT64),
    "free_tx_window": (1, MAX_UINT64),
    "block_gas_limit": (21_000, MAX_UINT64),
    "max_tx_size": (1024, 16 * 1024 * 1024),
    "max_code_size": (1, 2**32),
    "max_vals": (1, 1000),
    "backup_vals": (0, 1000),
    "epoch_blocks": (1, MAX_UINT64),
    "self_staking_ratio": (0, BASIS_POINTS),
    "min_staking_amount": (0, 2**128),
    "validator_size_threshold": (1, BASIS_POINTS),
    "unstake_waiting_period": (0, MAX_UINT64),
    "inflation_rate": (0, BASIS_POINTS),
    "blocks_per_year": (1, MAX_UINT64),
    "validators_block_award_ratio": (0, BASIS_POINTS),
    "community_pool_ratio": (0, BASIS_POINTS),
    "max_slash_blocks": (1, MAX_UINT64),
    "slash_ratio": (0, BASIS_POINTS),
    "slash_enabled": (0, 1),
    "jail_period": (0, MAX_UINT64),
    "verifier": (0, 2**160 - 1),
    "proposal_expire_period": (1, MAX_UINT64),
    "proposal_deposit": (0, 2**128),
}

# Parameters governance may change. The free-transfer window and the code size limit are fixed:
# changing them would re-bucket quota counters or invalidate deployed code assumptions.
GOVERNABLE = frozenset(_LIMITS) - {"free_tx_window", "max_code_size"}


def check_param(name: str, value: int) -> None:
    """Raise ``ValueError`` unless ``name`` is a parameter and ``value`` in its range."""
    if name not in _LIMITS:
        raise ValueError(f"unknown parameter {name!r}")
    low, high = _LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: {value!r} is out of range [{low}, {high}]")


def parse_int(value: Any, field: str) -> int:
    """An integer from JSON: a number, a decimal string or a 0x-hex string."""
    if isinstance(value, bool):
        raise GenesisError(f"{field}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 16) if text.lower().startswith("0x") else int(text, 10)
        except ValueError:
            pass
    raise GenesisError(
        f"{field}: expected an integer (number, decimal or 0x-hex string), got {value!r}"
    )


def parse_params(data: Any) -> Params:
    """Validate a genesis ``params`` object; unknown or out-of-range fields are errors."""
    if data is None:
        return Params()
    if not isinstance(data, dict):
        raise GenesisError("params: expected an object")
    known = {f.name for f in fields(Params)}
    for name in data:
        if name not in known:
            raise GenesisError(
                f"params.{name}: unknown parameter (known: {', '.join(sorted(known))})"
            )
    values = {}
    for name, raw in data.items():
        value = parse_int(raw, f"params.{name}")
        low, high = _LIMITS[name]
        if not low <= value <= high:
            raise GenesisError(f"params.{name}: {value} is out of range [{low}, {high}]")
        values[name] = value
    return Params(**values)
