"""What governance asks of staking: voting power and whether an account has stake.

One seam (tests substitute a ``PowerTable`` here without staking state).
"""

from __future__ import annotations

from cybermiles.chain.params import Params
from cybermiles.modules.framework.store import Backend
from cybermiles.modules.staking import power, state
from cybermiles.modules.staking.power import PowerTable


def power_table(backend: Backend, params: Params) -> PowerTable:
    """The election's voting power (``staking.power.power_table``)."""
    return power.power_table(backend, params)


def has_stake(backend: Backend, address: bytes) -> bool:
    """A candidate, or a delegator with shares > 0 (``staking.state.has_stake``)."""
    return state.has_stake(backend, address)
