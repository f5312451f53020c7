"""The native modules a chain runs, as py-evm precompiles keyed by address."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from cybermiles.modules.framework.module import Module


@cache
def modules() -> tuple[Module, ...]:
    """Every native module, one instance each (they hold no state of their own)."""
    from cybermiles.modules.governance.module import GovernanceModule
    from cybermiles.modules.staking.module import StakingModule

    return (StakingModule(), GovernanceModule())


def precompiles() -> dict[bytes, Callable[[Any], Any]]:
    return {module.address: module for module in modules()}
