"""Chain parameters set in genesis (later changed by governance).

Defaults: ``min_gas_price`` 1 gwei makes an ERC20 transfer (~35-50k gas) cost ~5e-5 CMT; a plain
transfer priced below it is free within ``free_tx_quota`` transfers per sender per
``free_tx_window`` blocks (anti-spam).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from cybermiles.chain.errors import GenesisError

GWEI = 10**9
MAX_UINT64 = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Params:
    min_gas_price: int = 1 * GWEI
    free_tx_quota: int = 1000
    free_tx_window: int = 8640
    block_gas_limit: int = 200_000_000
    max_tx_size: int = 128 * 1024
    max_code_size: int = 24_576

    def to_json(self) -> dict[str, int]:
        return asdict(self)


_LIMITS: dict[str, tuple[int, int]] = {
    "min_gas_price": (0, 2**256 - 1),
    "free_tx_quota": (0, MAX_UINT64),
    "free_tx_window": (1, MAX_UINT64),
    "block_gas_limit": (21_000, MAX_UINT64),
    "max_tx_size": (1024, 16 * 1024 * 1024),
    "max_code_size": (1, 2**32),
}


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
