"""Bonding and unbonding.

``bond`` adds stake to a delegation (creating it with the candidate's comp rate) and to the
candidate's shares.

Unbonding: withdrawn stake returns to its delegator at the end of ``mature_height``.

``withdraw`` (and ``withdrawCandidacy``, for every delegation) moves an amount out of the
delegation's shares into an unbonding entry maturing at ``now + unstake_waiting_period``. At the
end of each block every entry maturing at or before it is paid from the module's balance.
Unbonding stake earns nothing and is not slashed.
"""

from __future__ import annotations

from cybermiles.modules.addresses import STAKING
from cybermiles.modules.staking.records import Candidate, Delegation, Unbonding
from cybermiles.modules.staking.state import StakingState


def bond(
    state: StakingState, candidate: Candidate, delegator: bytes, amount: int, number: int
) -> Candidate:
    """Add ``amount`` to ``delegator``'s delegation on ``candidate`` (created at ``number``).

    Returns the candidate with its shares raised; the caller stores it.
    """
    delegation = state.get_delegation(candidate.owner, delegator)
    if delegation is None:
        delegation = Delegation(0, 0, 0, 0, candidate.comp_rate, number)
    state.put_delegation(
        candidate.owner,
        delegator,
        delegation.copy(delegate_amount=delegation.delegate_amount + amount),
    )
    return candidate.copy(shares=candidate.shares + amount)


def start_unbonding(
    state: StakingState,
    candidate: Candidate,
    delegator: bytes,
    amount: int,
    mature_height: int,
) -> Candidate:
    """Move ``amount`` of ``delegator``'s shares on ``candidate`` to unbonding.

    The caller has checked that the delegation holds ``amount``. Returns the candidate with
    its shares reduced; the caller stores it (or deletes it).
    """
    delegation = state.get_delegation(candidate.owner, delegator)
    if delegation is None or not 0 < amount <= delegation.shares:
        raise ValueError("unbonding more than the delegation's shares")
    state.put_delegation(
        candidate.owner,
        delegator,
        delegation.copy(withdraw_amount=delegation.withdraw_amount + amount),
    )
    state.add_unbonding(Unbonding(delegator, candidate.owner, amount, mature_height))
    return candidate.copy(shares=candidate.shares - amount)


def release_matured(state: StakingState, height: int) -> list[Unbonding]:
    """Pay every unbonding entry maturing at or before ``height``; return them."""
    entries = state.pop_unbondings(height)
    for entry in entries:
        state.store.transfer(STAKING, entry.delegator, entry.amount)
    return entries
