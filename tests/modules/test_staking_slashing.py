"""Slashing (double sign, downtime), jail, genesis validators and the cmt_query* views."""

from __future__ import annotations

import pytest
from eth.exceptions import Revert
from test_staking_support import CMT, WAD, Chain, account, staked_total

from cybermiles.chain.genesis import GenesisValidator
from cybermiles.crypto.address import to_checksum
from cybermiles.modules.addresses import COMMUNITY_POOL, STAKING
from cybermiles.modules.framework.block import DoubleSign
from cybermiles.modules.staking import queries
from cybermiles.modules.staking.genesis import init_staking
from cybermiles.modules.staking.lifecycle import should_elect

A, B, C, D1 = account(1), account(2), account(3), account(11)
MAX = 10_000 * CMT
SELF = MAX // 10


def three_validators(**changes: int) -> Chain:
    chain = Chain()
    chain.set_params(chain.params.replace(inflation_rate=0, **changes))
    for owner in (A, B, C):
        chain.declare(owner, MAX)
    chain.delegate(D1, A, 777 * CMT)
    chain.elect()
    assert len(chain.staking.validators()) == min(3, chain.params.max_vals)
    return chain


# -- double sign
def test_double_sign_slashes_every_delegation_deactivates_and_jails() -> None:
    chain = three_validators(slash_ratio=100)  # 1%
    assert A in chain.staking.validators()
    evidence = DoubleSign(A, chain.number)
    jailed_until = chain.number + chain.params.jail_period
    chain.end_block(evidence=(evidence,), elect=False)
    own, delegated = chain.staking.get_delegation(A, A), chain.staking.get_delegation(A, D1)
    assert own.slash_amount == SELF * 100 // 10_000
    assert delegated.slash_amount == 777 * CMT * 100 // 10_000
    candidate = chain.staking.get_candidate(A)
    assert candidate.shares == own.shares + delegated.shares
    assert not candidate.active and candidate.jailed_until == jailed_until
    assert A not in chain.staking.validators()
    assert chain.balance(COMMUNITY_POOL) == own.slash_amount + delegated.slash_amount
    assert chain.balance(STAKING) == staked_total(chain.staking)
    # jailed: activation refused until the jail ends, then allowed
    while chain.number < jailed_until:
        with pytest.raises(Revert, match="jailed until"):
            chain.call(A, "activateCandidacy")
        chain.end_block(elect=False)
    chain.call(A, "activateCandidacy")
    assert chain.staking.get_candidate(A).active


def test_evidence_while_jailed_is_the_same_incident() -> None:
    chain = three_validators(slash_ratio=100)
    first = chain.number
    chain.end_block(evidence=(DoubleSign(A, first),), elect=False)
    after_first = chain.staking.get_delegation(A, A).slash_amount
    pool = chain.balance(COMMUNITY_POOL)
    # the double signer equivocated at the next heights too, before it left the set
    chain.end_block(evidence=(DoubleSign(A, first + 1), DoubleSign(A, first + 2)), elect=False)
    assert chain.staking.get_delegation(A, A).slash_amount == after_first
    assert chain.balance(COMMUNITY_POOL) == pool
    assert chain.staking.get_candidate(A).jailed_until == first + chain.params.jail_period


def test_unknown_candidate_evidence_is_ignored() -> None:
    chain = three_validators()
    chain.end_block(evidence=(DoubleSign(D1, 1),))
    assert chain.balance(COMMUNITY_POOL) == 0


# -- downtime
@pytest.mark.parametrize("enabled", [0, 1])
def test_downtime_deactivates_after_max_slash_blocks_and_slashes_if_enabled(enabled: int) -> None:
    chain = three_validators(max_slash_blocks=3, slash_enabled=enabled, epoch_blocks=1000)
    present = frozenset({B, C})
    chain.end_block(signers=present)
    chain.end_block(signers=present)
    chain.end_block()  # signing resets the count
    assert chain.staking.get_candidate(A).missed_blocks == 0
    chain.end_block(signers=present)
    chain.end_block(signers=present)
    assert chain.staking.get_candidate(A).active
    assert chain.staking.get_candidate(A).missed_blocks == 2
    chain.end_block(signers=present)
    candidate = chain.staking.get_candidate(A)
    assert not candidate.active and candidate.missed_blocks == 0
    assert A not in chain.staking.validators()
    slashed = chain.staking.get_delegation(A, D1).slash_amount
    assert slashed == (777 * CMT * 10 // 10_000 if enabled else 0)
    assert chain.balance(COMMUNITY_POOL) == (SELF * 10 // 10_000 + slashed if enabled else 0)
    chain.call(A, "activateCandidacy")  # not jailed: may come back at once
    assert chain.staking.get_candidate(A).jailed_until == 0


def test_only_current_validators_are_tracked() -> None:
    chain = three_validators(max_slash_blocks=1, max_vals=2, epoch_blocks=1000)
    outsider = next(o for o in (A, B, C) if o not in chain.staking.validators())
    chain.end_block(signers=frozenset(chain.staking.validators()))
    assert chain.staking.get_candidate(outsider).active


# -- election timing
def test_should_elect_at_epoch_boundaries() -> None:
    params = Chain().params.replace(epoch_blocks=100)
    assert [n for n in range(0, 301) if should_elect(n, params)] == [0, 100, 200, 300]


# -- genesis
def _validator(owner: bytes, max_amount: int, *delegations: tuple[bytes, int]) -> GenesisValidator:
    return GenesisValidator(
        owner, owner + bytes(12), max_amount, WAD // 5, ("g", "", "", "", ""), delegations
    )


def test_genesis_declares_validators_and_elects() -> None:
    chain = Chain()
    validators = (_validator(A, MAX, (D1, 500 * CMT)), _validator(B, MAX))
    init_staking(chain.state, validators, chain.params, 5 * CMT)
    staked = 2 * SELF + 500 * CMT
    assert chain.balance(STAKING) == staked == staked_total(chain.staking)
    assert queries.total_supply(chain.state) == 5 * CMT + staked
    assert chain.staking.get_candidate(A).self_stake == SELF
    assert chain.staking.get_delegation(A, D1).delegate_amount == 500 * CMT
    assert chain.staking.validators() == [A, B]  # A has more power
    assert chain.staking.get_candidate(A).created_at == 0


def test_genesis_rejects_bad_validators_naming_them() -> None:
    chain = Chain()
    over = _validator(A, MAX, (D1, MAX - SELF + 1))
    with pytest.raises(ValueError, match=f"{to_checksum(A)}.*above max_amount"):
        init_staking(chain.state, (over,), chain.params, 0)
    twice = (_validator(A, MAX), _validator(A, MAX))
    with pytest.raises(ValueError, match="declared twice"):
        init_staking(chain.state, twice, chain.params, 0)
    same_key = (_validator(A, MAX), GenesisValidator(B, A + bytes(12), MAX, 0))
    with pytest.raises(ValueError, match=f"{to_checksum(B)}.*pub_key already used"):
        init_staking(chain.state, same_key, chain.params, 0)
    with pytest.raises(ValueError, match="comp_rate"):
        init_staking(
            chain.state, (GenesisValidator(A, b"\x01" * 32, MAX, WAD + 1),), chain.params, 0
        )
    assert chain.staking.candidates() == []


# -- queries
def test_query_views() -> None:
    chain = Chain()
    chain.set_params(chain.params.replace(max_vals=1, backup_vals=1))
    chain.declare(A, MAX, comp_rate=WAD // 5)
    chain.declare(B, MAX // 2, comp_rate=WAD)
    chain.declare(C, MAX // 4, comp_rate=0)
    chain.call(C, "deactivateCandidacy")
    chain.delegate(D1, A, 300 * CMT)
    chain.call(D1, "withdraw", A, 100 * CMT)
    chain.elect()
    listed = queries.validators(chain.state, chain.params)
    assert [v["owner_address"] for v in listed] == [to_checksum(a) for a in (A, B, C)]
    first = listed[0]
    assert first["state"] == "Validator" and listed[1]["state"] == "Backup Validator"
    assert listed[2]["state"] == "Candidate" and listed[2]["active"] == "N"
    assert [v["rank"] for v in listed] == [1, 2, 3]
    assert first["comp_rate"] == "0.2" and listed[1]["comp_rate"] == "1"
    assert listed[2]["comp_rate"] == "0"
    assert first["shares"] == str(SELF + 200 * CMT)
    assert first["max_shares"] == str(MAX) and first["self_stake"] == str(SELF)
    assert first["num_of_delegators"] == 2 and first["verified"] == "N"
    assert first["description"]["name"] == "node"
    assert int(first["voting_power"]) > 0 and listed[2]["voting_power"] == "0"
    assert queries.candidate(chain.state, chain.params, A) == first
    assert queries.candidate(chain.state, chain.params, D1) is None
    (delegation,) = queries.delegator(chain.state, chain.params, D1)
    assert delegation["validator_address"] == to_checksum(A)
    assert delegation["delegate_amount"] == str(300 * CMT)
    assert delegation["withdraw_amount"] == str(100 * CMT)
    assert delegation["pending_withdraw_amount"] == str(100 * CMT)
    assert delegation["shares"] == str(200 * CMT) and delegation["comp_rate"] == "0.2"
    assert set(delegation) >= {"slash_amount", "award_amount", "voting_power", "created_at"}
