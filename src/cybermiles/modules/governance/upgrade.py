"""Software upgrades that governance passed, and the one the node must check before a block.

A passed upgrade ``(name, version, height)`` means: a node not running ``version`` stops before
block ``height``. Plans stay in the state after they take effect, so a node of an older version
restarted past ``height`` still finds the plan and refuses to go on; a plan is dropped once a
later plan has taken effect (its height reached) or when another plan passes for the same
height (the later decision wins).

The node's check before block ``n``: ``plan = pending_upgrade(state)``; stop if
``plan is not None and n >= plan.height and plan.version != running version``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cybermiles.modules.framework.store import Backend
from cybermiles.modules.governance import state


@dataclass(frozen=True, slots=True)
class UpgradePlan:
    name: str
    version: str
    height: int


def pending_upgrade(backend: Backend) -> UpgradePlan | None:
    """The passed upgrade plan in force with the lowest height, if any."""
    plans = state.upgrade_plans(backend)
    if not plans:
        return None
    first = plans[0]
    return UpgradePlan(first.name, first.version, first.height)


def record_plan(backend: Backend, proposal_id: int, name: str, version: str, height: int) -> None:
    """Add a passed plan; it replaces any plan for the same height."""
    plans = [p for p in state.upgrade_plans(backend) if p.height != height]
    plans.append(state.PlanRecord(height, proposal_id, name, version))
    state.set_upgrade_plans(backend, plans)


def retire_plans(backend: Backend, number: int) -> None:
    """At the end of block ``number``: of the plans in effect for the next block (height ≤
    ``number + 1``), keep only the latest; future plans stay."""
    plans = state.upgrade_plans(backend)
    effective = [p for p in plans if p.height <= number + 1]
    if len(effective) <= 1:
        return
    latest = effective[-1]
    state.set_upgrade_plans(backend, [p for p in plans if p.height > number + 1 or p is latest])
