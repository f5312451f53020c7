"""Block rewards (docs/staking.md, "Rewards (every block)").

At the end of block ``h``, with the voting power at that moment:

1. ``mint = total_supply * inflation_rate // (10000 * blocks_per_year)``, only if some current
   validator has power; ``total_supply`` grows by it and the module's balance receives it.
2. ``award = mint + fees`` (the fees are already in the module's balance: it is the coinbase).
3. ``community = award * community_pool_ratio // 10000`` goes to the community pool.
4. Of ``rest = award - community``, the validators that signed get
   ``rest * validators_block_award_ratio // 10000`` and the backups that signed the remainder;
   with no signed backup power the validators get all of ``rest``.
5. In a group with share ``S`` and power ``P``, each delegation with power ``VP`` gets
   ``r = S * VP // P``: the candidate's owner takes ``r * comp_rate // 1e18`` (the
   delegation's comp rate) into its own delegation, the delegator the rest; both are
   auto-compounded into ``award_amount`` and the candidate's shares.
6. Every remainder (``S - sum(r)``, all of ``S`` for a group without power) goes to the pool.

Candidates in address order, delegations in delegator order. The per-candidate totals are kept
as the last block's awards (``cmt_queryAwardInfos``).
"""

from __future__ import annotations

from cybermiles.chain.params import BASIS_POINTS, WAD, Params
from cybermiles.modules.addresses import COMMUNITY_POOL, STAKING
from cybermiles.modules.framework.block import BlockInfo
from cybermiles.modules.staking.power import PowerTable, power_table
from cybermiles.modules.staking.records import Delegation
from cybermiles.modules.staking.state import StakingState


def block_mint(total_supply: int, params: Params) -> int:
    """One block's mint: ``total_supply * inflation_rate // (10000 * blocks_per_year)``."""
    return total_supply * params.inflation_rate // (BASIS_POINTS * params.blocks_per_year)


def _signed(members: list[bytes], info: BlockInfo, table: PowerTable) -> list[bytes]:
    """The members with power that signed the block, in address order."""
    signers = info.signers
    return sorted(m for m in members if m in table.candidates and (signers is None or m in signers))


def pay_member(
    state: StakingState, member: bytes, share: int, power: int, table: PowerTable
) -> int:
    """Pay one candidate's delegations their part of ``share``; return the candidate's total.

    Each delegation is read and written once; the owner's commissions are summed and added to
    its own delegation last (created with the candidate's rate if it had been emptied).
    """
    candidate = state.get_candidate(member)
    if candidate is None:
        return 0
    owner = candidate.owner
    total = commissions = 0
    owner_delegation: Delegation | None = None
    for delegator, vp in sorted(table.delegations[member].items()):
        reward = share * vp // power
        if reward == 0:
            continue
        delegation = state.get_delegation(member, delegator)
        assert delegation is not None  # it has power
        commission = reward * delegation.comp_rate // WAD
        credited = delegation.copy(award_amount=delegation.award_amount + reward - commission)
        if delegator == owner:
            owner_delegation = credited
        elif reward != commission:
            state.replace_delegation(member, delegator, credited)
        commissions += commission
        total += reward
    if owner_delegation is None and commissions:
        owner_delegation = state.get_delegation(member, owner)
        if owner_delegation is None:
            owner_delegation = Delegation(0, 0, 0, 0, candidate.comp_rate, 0)
    if owner_delegation is not None:
        award = owner_delegation.award_amount + commissions
        state.put_delegation(member, owner, owner_delegation.copy(award_amount=award))
    if total:
        state.put_candidate(candidate.copy(shares=candidate.shares + total))
    return total


def distribute_rewards(state: StakingState, info: BlockInfo, params: Params) -> None:
    """Mint and pay the block's award (see the module docstring)."""
    table = power_table(state.backend, params)
    validators = state.validators()
    backups = state.backups()
    mint = 0
    if any(v in table.candidates for v in validators):
        mint = block_mint(state.total_supply(), params)
        state.store.mint(STAKING, mint)
        state.set_total_supply(state.total_supply() + mint)
    award = mint + info.fees
    community = award * params.community_pool_ratio // BASIS_POINTS
    rest = award - community
    signed_validators = _signed(validators, info, table)
    signed_backups = _signed(backups, info, table)
    if signed_backups:
        validator_share = rest * params.validators_block_award_ratio // BASIS_POINTS
    else:
        validator_share = rest
    backup_share = rest - validator_share
    awards: list[tuple[bytes, bool, int]] = []
    paid = 0
    for members, share, is_backup in (
        (signed_validators, validator_share, False),
        (signed_backups, backup_share, True),
    ):
        power = sum(table.candidates[m] for m in members)
        if power == 0:
            continue
        for member in members:
            amount = pay_member(state, member, share, power, table)
            paid += amount
            if amount:
                awards.append((member, is_backup, amount))
    state.store.transfer(STAKING, COMMUNITY_POOL, award - paid)
    state.set_awards(awards)
