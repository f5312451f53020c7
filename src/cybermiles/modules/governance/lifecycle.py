"""Governance's part of the end of every block (after staking's, before the election).

At the end of block ``h``:

1. every proposal still voting is tallied with the power of the moment (``tally``); it passes
   early, or, at the end of its voting period (``h ≥ expire_height``), passes, is rejected or
   expires; proposals are decided in id order;
2. a decided proposal's deposit returns to its proposer (passed, rejected, failed) or goes to the
   community pool (expired);
3. what passed is carried out: a transfer is paid from the community pool (``Failed`` when the
   pool is short); a parameter change is scheduled for the end of block ``max(height, h)``; an
   upgrade plan is recorded (``Failed`` when its height is not after ``h``: that block is made);
4. parameter changes due by ``h`` are applied, by (height, proposal id);
5. upgrade plans superseded by a later plan in effect are dropped (``upgrade.retire_plans``).
"""

from __future__ import annotations

from dataclasses import replace

from cybermiles.chain.params import GOVERNABLE, Params
from cybermiles.modules.addresses import COMMUNITY_POOL, GOVERNANCE
from cybermiles.modules.framework.block import BlockInfo
from cybermiles.modules.framework.store import Backend, ModuleStore
from cybermiles.modules.governance import stake, state
from cybermiles.modules.governance.records import (
    ChangeParam,
    Proposal,
    Status,
    Tally,
    TransferFund,
    Upgrade,
)
from cybermiles.modules.governance.tally import decide, tally
from cybermiles.modules.governance.upgrade import record_plan, retire_plans
from cybermiles.modules.params import read_params, write_params


def end_block(backend: Backend, info: BlockInfo, params: Params) -> None:
    """Decide proposals, settle deposits, carry out what passed (see the module docstring)."""
    decide_proposals(backend, info.number, params)
    apply_due_changes(backend, info.number)
    retire_plans(backend, info.number)


def decide_proposals(backend: Backend, number: int, params: Params) -> None:
    ids = state.active_ids(backend)
    if not ids:
        return
    table = stake.power_table(backend, params)
    still_voting = []
    for proposal_id in ids:
        proposal = state.get_proposal(backend, proposal_id)
        if proposal is None:  # unreachable: active ids always have records
            continue
        result = tally(table, state.get_votes(backend, proposal_id))
        status = decide(result, table.total, voting_ended=number >= proposal.expire_height)
        if status is Status.VOTING:
            still_voting.append(proposal_id)
            continue
        state.drop_votes(backend, proposal_id)
        state.put_proposal(backend, conclude(backend, proposal, status, result, number))
    state.set_active_ids(backend, still_voting)


def conclude(
    backend: Backend, proposal: Proposal, status: Status, result: Tally, number: int
) -> Proposal:
    """Settle the deposit and, if passed, carry the proposal out; the decided record."""
    store = ModuleStore(backend, GOVERNANCE)
    if status is Status.EXPIRED:
        store.transfer(GOVERNANCE, COMMUNITY_POOL, proposal.deposit)
    else:
        store.transfer(GOVERNANCE, proposal.proposer, proposal.deposit)
    if status is Status.PASSED:
        status = carry_out(backend, proposal, number)
    return replace(proposal, status=status, end_height=number, tally=result)


def carry_out(backend: Backend, proposal: Proposal, number: int) -> Status:
    """Do what a passed proposal says at the end of block ``number``: ``PASSED`` or ``FAILED``."""
    detail = proposal.detail
    if isinstance(detail, TransferFund):
        store = ModuleStore(backend, COMMUNITY_POOL)
        if store.balance(COMMUNITY_POOL) < detail.amount:
            return Status.FAILED
        store.transfer(COMMUNITY_POOL, detail.to, detail.amount)
    elif isinstance(detail, ChangeParam):
        changes = state.scheduled_changes(backend)
        height = max(detail.height, number)
        changes.append(state.ScheduledChange(height, proposal.id, detail.name, detail.value))
        state.set_scheduled_changes(backend, changes)
    elif isinstance(detail, Upgrade):
        if detail.height <= number:
            return Status.FAILED
        record_plan(backend, proposal.id, detail.name, detail.version, detail.height)
    return Status.PASSED


def apply_due_changes(backend: Backend, number: int) -> None:
    """Apply the scheduled parameter changes due by the end of block ``number``."""
    changes = state.scheduled_changes(backend)
    due = [c for c in changes if c.height <= number]
    if not due:
        return
    params = read_params(backend)
    for change in due:
        try:
            if change.name not in GOVERNABLE:
                raise ValueError(f"{change.name} is not governable")
            params = params.replace(**{change.name: change.value})
        except ValueError:
            # Checked when proposed; only a rule changed by a newer version can get here.
            _mark_failed(backend, change.proposal_id)
    write_params(backend, params)
    state.set_scheduled_changes(backend, [c for c in changes if c.height > number])


def _mark_failed(backend: Backend, proposal_id: int) -> None:
    proposal = state.get_proposal(backend, proposal_id)
    if proposal is not None:
        state.put_proposal(backend, replace(proposal, status=Status.FAILED))
