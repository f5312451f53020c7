"""Block rewards: mint, community share, validator/backup split, comp rates, remainders,
auto-compounding; and the balance invariant after many random operations."""

from __future__ import annotations

import random

import pytest
from eth.exceptions import Revert
from test_staking_support import CMT, WAD, Chain, account, staked_total

from cybermiles.chain.genesis import GenesisValidator
from cybermiles.crypto.address import to_checksum
from cybermiles.modules.addresses import COMMUNITY_POOL, STAKING
from cybermiles.modules.framework.block import DoubleSign
from cybermiles.modules.staking import power_table
from cybermiles.modules.staking.genesis import init_staking
from cybermiles.modules.staking.queries import award_infos, total_supply
from cybermiles.modules.staking.rewards import block_mint

V, W, X, D1, D2 = account(1), account(2), account(3), account(11), account(12)
SUPPLY = 1_000_000 * CMT


def genesis_chain(validators: list[GenesisValidator], **changes: int) -> Chain:
    """A chain whose total supply is ``SUPPLY`` (alloc + stake) and with a first election."""
    chain = Chain()
    chain.set_params(chain.params.replace(**changes))
    staked = sum(
        v.max_amount * chain.params.self_staking_ratio // 10_000 + sum(a for _, a in v.delegations)
        for v in validators
    )
    init_staking(chain.state, tuple(validators), chain.params, SUPPLY - staked)
    return chain


def gv(
    owner: bytes, max_amount: int, rate: int, *delegations: tuple[bytes, int]
) -> GenesisValidator:
    return GenesisValidator(
        owner, owner + bytes(12), max_amount, rate, ("", "", "", "", ""), delegations
    )


def test_one_validator_by_hand() -> None:
    """10% a year over 100 blocks: mint 1000 CMT; 5% to the pool; comp rate 0.2."""
    chain = genesis_chain(
        [gv(V, 10_000 * CMT, WAD // 5, (D1, 1000 * CMT))],
        inflation_rate=1000,
        blocks_per_year=100,
        backup_vals=0,
    )
    assert block_mint(SUPPLY, chain.params) == 1000 * CMT
    assert chain.staking.validators() == [V]
    before = chain.balance(STAKING)
    chain.end_block()
    # both delegations (1000 CMT each) capped alike: equal power, 950 CMT split 475 / 475
    assert chain.balance(COMMUNITY_POOL) == 50 * CMT
    assert chain.staking.get_delegation(V, D1).award_amount == 380 * CMT  # 475 × 0.8
    assert chain.staking.get_delegation(V, V).award_amount == 570 * CMT  # 475 + 95 commission
    assert chain.staking.get_candidate(V).shares == 2000 * CMT + 950 * CMT
    assert chain.balance(STAKING) == before + 950 * CMT
    assert total_supply(chain.state) == SUPPLY + 1000 * CMT
    assert award_infos(chain.state) == [
        {
            "address": to_checksum(V),
            "state": "Validator",
            "amount": str(950 * CMT),
        }
    ]


def test_fees_join_the_award_and_are_not_minted() -> None:
    chain = genesis_chain(
        [gv(V, 10_000 * CMT, WAD // 5, (D1, 1000 * CMT))],
        inflation_rate=1000,
        blocks_per_year=100,
        backup_vals=0,
    )
    before = chain.balance(STAKING)
    chain.end_block(fees=100 * CMT)
    # award 1100: pool 55, 1045 split 522.5 / 522.5
    assert chain.balance(COMMUNITY_POOL) == 55 * CMT
    assert chain.staking.get_delegation(V, D1).award_amount == 418 * CMT  # 522.5 × 0.8
    assert chain.balance(STAKING) == before + 1045 * CMT
    assert total_supply(chain.state) == SUPPLY + 1000 * CMT  # fees are not new CMT
    assert chain.balance(STAKING) == staked_total(chain.staking)


def _expected_group(
    chain: Chain, members: list[bytes], share: int
) -> tuple[dict[tuple[bytes, bytes], int], int]:
    """Per (candidate, delegator) award from rules 5-6, and the group's remainder."""
    table = power_table(chain.state, chain.params)
    power = sum(table.candidates[m] for m in members)
    out: dict[tuple[bytes, bytes], int] = {}
    paid = 0
    for m in sorted(members):
        for delegator, vp in sorted(table.delegations[m].items()):
            r = share * vp // power
            rate = chain.staking.get_delegation(m, delegator).comp_rate
            commission = r * rate // WAD
            out[(m, delegator)] = out.get((m, delegator), 0) + r - commission
            out[(m, m)] = out.get((m, m), 0) + commission
            paid += r
    return out, share - paid


def test_validators_90_backups_10_with_comp_rates_and_remainders() -> None:
    chain = genesis_chain(
        [
            gv(V, 10_000 * CMT, WAD // 5, (D1, 1234 * CMT)),
            gv(W, 9_000 * CMT, WAD // 3, (D2, 777 * CMT)),
            gv(X, 7_000 * CMT, WAD // 10, (D1, 333 * CMT)),
        ],
        max_vals=2,
        backup_vals=1,
    )
    validators, backups = chain.staking.validators(), chain.staking.backups()
    assert len(validators) == 2 and len(backups) == 1
    fees = 7 * CMT + 1
    award = block_mint(SUPPLY, chain.params) + fees
    community = award * 500 // 10_000
    rest = award - community
    val_share = rest * 9000 // 10_000
    expected_v, rem_v = _expected_group(chain, validators, val_share)
    expected_b, rem_b = _expected_group(chain, backups, rest - val_share)
    before = {
        k: chain.staking.get_delegation(*k).award_amount for k in {**expected_v, **expected_b}
    }
    chain.end_block(fees=fees)
    for key, amount in {**expected_v, **expected_b}.items():
        assert chain.staking.get_delegation(*key).award_amount - before[key] == amount, key
    assert chain.balance(COMMUNITY_POOL) == community + rem_v + rem_b
    assert rem_v + rem_b > 0  # the case exercises remainders
    assert chain.balance(STAKING) == staked_total(chain.staking)
    states = {i["state"] for i in award_infos(chain.state)}
    assert states == {"Validator", "Backup Validator"}


def test_without_backup_power_validators_take_all_of_rest() -> None:
    chain = genesis_chain(
        [gv(V, 10_000 * CMT, 0), gv(W, 10_000 * CMT, 0), gv(X, 10_000 * CMT, 0)],
        max_vals=2,
        backup_vals=1,
    )
    (backup,) = chain.staking.backups()
    chain.call(backup, "deactivateCandidacy")
    award = block_mint(SUPPLY, chain.params)
    rest = award - award * 500 // 10_000
    expected, remainder = _expected_group(chain, chain.staking.validators(), rest)
    chain.end_block()
    for (candidate, delegator), amount in expected.items():
        assert chain.staking.get_delegation(candidate, delegator).award_amount == amount
    assert chain.balance(COMMUNITY_POOL) == award - rest + remainder


def test_only_members_that_signed_are_paid() -> None:
    chain = genesis_chain(
        [gv(V, 10_000 * CMT, 0), gv(W, 10_000 * CMT, 0)], max_vals=2, backup_vals=0
    )
    award = block_mint(SUPPLY, chain.params)
    rest = award - award * 500 // 10_000
    chain.end_block(signers=frozenset({V}))
    assert chain.staking.get_delegation(W, W).award_amount == 0
    assert chain.staking.get_delegation(V, V).award_amount == rest  # all the validators' share
    chain.end_block(signers=frozenset())  # nobody signed: the whole award to the pool
    assert chain.staking.get_delegation(V, V).award_amount == rest
    assert chain.balance(STAKING) == staked_total(chain.staking)


def test_no_power_at_all_sends_the_fees_to_the_pool_and_mints_nothing() -> None:
    chain = genesis_chain([gv(V, 10_000 * CMT, 0)])
    chain.call(V, "deactivateCandidacy")
    chain.end_block(fees=3 * CMT)
    assert chain.balance(COMMUNITY_POOL) == 3 * CMT
    assert total_supply(chain.state) == SUPPLY
    assert award_infos(chain.state) == []
    assert chain.balance(STAKING) == staked_total(chain.staking)


def test_rewards_compound_into_shares_and_power() -> None:
    chain = genesis_chain([gv(V, 10_000 * CMT, WAD // 5, (D1, 2000 * CMT))], min_staking_amount=0)
    for _ in range(3):
        chain.end_block()
    delegation = chain.staking.get_delegation(V, D1)
    assert delegation.award_amount > 0
    assert delegation.shares == 2000 * CMT + delegation.award_amount
    candidate = chain.staking.get_candidate(V)
    assert candidate.shares == sum(
        chain.staking.get_delegation(V, d).shares for d in chain.staking.delegators(V)
    )
    assert chain.balance(STAKING) == staked_total(chain.staking)


@pytest.mark.parametrize("seed", [1, 2])
def test_balance_invariant_after_random_operations(seed: int) -> None:
    rng = random.Random(seed)
    chain = genesis_chain(
        [gv(V, 20_000 * CMT, WAD // 5, (D1, 1500 * CMT)), gv(W, 20_000 * CMT, WAD // 2)],
        max_vals=2,
        backup_vals=2,
        epoch_blocks=3,
        max_slash_blocks=2,
        slash_enabled=1,
        slash_ratio=500,
        jail_period=4,
    )
    people = [account(i) for i in range(1, 9)]
    for _ in range(200):
        who = rng.choice(people)
        candidates = chain.staking.candidate_addresses()
        other = rng.choice(candidates) if candidates and rng.randrange(5) else rng.choice(people)
        op = rng.randrange(9)
        try:
            if op == 0:
                chain.declare(who, rng.randrange(1, 20_000) * CMT, rng.randrange(WAD + 1))
            elif op in (1, 2):
                chain.delegate(who, other, rng.randrange(1, 3000) * CMT)
            elif op == 3:
                mine = chain.staking.delegated_candidates(who) or [other]
                other = rng.choice(mine)
                delegation = chain.staking.get_delegation(other, who)
                shares = delegation.shares if delegation else 1
                chain.call(who, "withdraw", other, rng.randrange(1, shares + 1))
            elif op == 4:
                chain.call(who, rng.choice(["activateCandidacy", "deactivateCandidacy"]))
            elif op == 5 and rng.randrange(4) == 0:
                chain.call(who, "withdrawCandidacy")
            elif op == 6:
                chain.call(who, "setCompRate", other, rng.randrange(WAD // 2))
            else:
                signers = frozenset(p for p in people if rng.randrange(3))
                evidence = (DoubleSign(who, chain.number),) if rng.randrange(10) == 0 else ()
                chain.end_block(rng.randrange(10**18), rng.choice([None, signers]), evidence)
        except Revert:
            pass
        assert chain.balance(STAKING) == staked_total(chain.staking)
    assert total_supply(chain.state) > SUPPLY
