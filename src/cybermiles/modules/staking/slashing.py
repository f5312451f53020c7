"""Slashing (docs/staking.md, "Slashing").

* Double sign (consensus evidence): every delegation of the candidate loses
  ``s * slash_ratio // 10000`` (added to its ``slash_amount``); the candidate is deactivated and
  jailed until ``height + jail_period``. Evidence naming no candidate is ignored.
* Downtime: a current validator that misses ``max_slash_blocks`` consecutive blocks is
  deactivated (it may ``activateCandidacy`` at once) and, if ``slash_enabled``, slashed as above.
  Only current validators are tracked; signing resets the count, and so does deactivation.

A deactivated candidate leaves the validator and backup sets at once. Slashed CMT moves from
the module's balance to the community pool.
"""

from __future__ import annotations

from cybermiles.chain.params import BASIS_POINTS, Params
from cybermiles.modules.addresses import COMMUNITY_POOL, STAKING
from cybermiles.modules.framework.block import BlockInfo
from cybermiles.modules.staking.records import Candidate
from cybermiles.modules.staking.state import StakingState


def slash_delegations(state: StakingState, candidate: Candidate, params: Params) -> Candidate:
    """Slash every delegation of ``candidate``; return the candidate with reduced shares."""
    total = 0
    for delegator in state.delegators(candidate.owner):
        delegation = state.get_delegation(candidate.owner, delegator)
        if delegation is None:
            continue
        cut = delegation.shares * params.slash_ratio // BASIS_POINTS
        if cut == 0:
            continue
        state.put_delegation(
            candidate.owner, delegator, delegation.copy(slash_amount=delegation.slash_amount + cut)
        )
        total += cut
    state.store.transfer(STAKING, COMMUNITY_POOL, total)
    return candidate.copy(shares=candidate.shares - total)


def deactivate(state: StakingState, candidate: Candidate) -> Candidate:
    """The candidate inactive, its downtime count reset, and out of the sets."""
    state.leave_sets(candidate.owner)
    return candidate.copy(active=False, missed_blocks=0)


def punish_double_signs(state: StakingState, info: BlockInfo, params: Params) -> None:
    """Slash, deactivate and jail every candidate named by ``info.evidence``, in order.

    A candidate still jailed is not punished again: the evidence is of the same incident (a
    double-signing validator equivocates at every height until it leaves the set, two blocks
    after the first evidence), and one incident is slashed once, as in Cosmos.
    """
    for evidence in info.evidence:
        candidate = state.get_candidate(evidence.candidate)
        if candidate is None or candidate.jailed_until > info.number:
            continue
        candidate = slash_delegations(state, candidate, params)
        candidate = deactivate(state, candidate)
        jailed_until = max(candidate.jailed_until, info.number + params.jail_period)
        state.put_candidate(candidate.copy(jailed_until=jailed_until))


def track_downtime(state: StakingState, info: BlockInfo, params: Params) -> None:
    """Count consecutive missed blocks of the current validators; punish at the limit."""
    for owner in sorted(state.validators()):
        candidate = state.get_candidate(owner)
        if candidate is None:
            continue
        if info.signers is None or owner in info.signers:
            if candidate.missed_blocks:
                state.put_candidate(candidate.copy(missed_blocks=0))
            continue
        missed = candidate.missed_blocks + 1
        if missed < params.max_slash_blocks:
            state.put_candidate(candidate.copy(missed_blocks=missed))
            continue
        if params.slash_enabled:
            candidate = slash_delegations(state, candidate, params)
        state.put_candidate(deactivate(state, candidate))
