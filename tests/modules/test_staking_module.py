"""IStaking calls through ``Module.__call__``: each rule's success and its revert reason."""

from __future__ import annotations

import pytest
from eth.exceptions import Revert
from eth_abi import decode
from fake_evm import computation_for
from test_staking_support import CMT, DESC, WAD, Chain, account, staked_total

from cybermiles.crypto.keccak import keccak256
from cybermiles.modules.addresses import STAKING
from cybermiles.modules.framework.module import event_topic, revert_data
from cybermiles.modules.staking import has_stake
from cybermiles.modules.staking.module import CALL_GAS, DECLARE_GAS, SET_COMP_RATE_GAS, VIEW_GAS

A, B, D1, D2, VERIFIER = account(1), account(2), account(11), account(12), account(99)
MAX = 1000 * CMT
SELF = MAX * 1000 // 10_000  # self_staking_ratio 10%


@pytest.fixture
def chain() -> Chain:
    c = Chain()
    c.set_params(c.params.replace(verifier=int.from_bytes(VERIFIER, "big")))
    return c


def reverts(reason: str) -> pytest.RaisesContext[Revert]:
    return pytest.raises(Revert, match=reason)


# -- declareCandidacy
def test_declare_creates_an_active_unverified_candidate_with_its_self_stake(chain: Chain) -> None:
    computation = chain.declare(A, MAX, comp_rate=WAD // 5)
    candidate = chain.staking.get_candidate(A)
    assert candidate is not None
    assert (candidate.max_amount, candidate.comp_rate) == (MAX, WAD // 5)
    assert (candidate.shares, candidate.self_stake) == (SELF, SELF)
    assert candidate.active and not candidate.verified
    assert candidate.description == DESC
    assert candidate.created_at == chain.number
    delegation = chain.staking.get_delegation(A, A)
    assert delegation is not None and delegation.delegate_amount == SELF
    assert delegation.comp_rate == WAD // 5
    assert chain.balance(STAKING) == SELF and chain.balance(A) == 0
    assert computation.gas_used == DECLARE_GAS
    (address, topics, data) = computation.logs[0]
    assert address == STAKING
    assert topics == [
        event_topic("CandidacyDeclared(address,bytes32,uint256,uint256)"),
        int.from_bytes(A, "big"),
    ]
    assert decode(["bytes32", "uint256", "uint256"], data) == (
        chain.staking.get_candidate(A).pub_key,
        MAX,
        WAD // 5,
    )
    assert has_stake(chain.state, A)


def test_declare_needs_the_exact_self_stake(chain: Chain) -> None:
    chain.fund(A, SELF + 1)
    with reverts(f"self-stake {SELF} wei, got {SELF + 1}"):
        chain.call(A, "declareCandidacy", b"\x01" * 32, MAX, 0, DESC, value=SELF + 1)
    with reverts(f"self-stake {SELF} wei, got {SELF - 1}"):
        chain.call(A, "declareCandidacy", b"\x01" * 32, MAX, 0, DESC, value=SELF - 1)
    assert chain.balance(A) == SELF + 1  # rolled back
    assert chain.staking.candidates() == []


def test_declare_bad_calls_revert(chain: Chain) -> None:
    chain.declare(A, MAX, key=b"\x01" * 32)
    chain.fund(B, 10 * SELF)
    with reverts("already a candidate"):
        chain.declare(A, MAX, key=b"\x02" * 32)
    with reverts("pubKey already used by candidate"):
        chain.call(B, "declareCandidacy", b"\x01" * 32, MAX, 0, DESC, value=SELF)
    with reverts("pubKey must not be zero"):
        chain.call(B, "declareCandidacy", bytes(32), MAX, 0, DESC, value=SELF)
    with reverts("compRate .* above 1e18"):
        chain.call(B, "declareCandidacy", b"\x02" * 32, MAX, WAD + 1, DESC, value=SELF)
    with reverts("maxAmount must be positive"):
        chain.call(B, "declareCandidacy", b"\x02" * 32, 0, 0, DESC, value=0)
    long_name = ("x" * 71, "", "", "", "")
    with reverts("description name longer than 70 bytes"):
        chain.call(B, "declareCandidacy", b"\x02" * 32, MAX, 0, long_name, value=SELF)
    chain.call(B, "declareCandidacy", b"\x02" * 32, MAX, WAD, DESC, value=SELF)  # 100% is fine


# -- updateCandidacy
def test_update_raising_max_amount_needs_the_extra_self_stake(chain: Chain) -> None:
    chain.declare(A, MAX)
    key = chain.staking.get_candidate(A).pub_key
    extra = 2 * MAX * 1000 // 10_000 - SELF
    chain.fund(A, extra)
    with reverts(f"extra self-stake {extra} wei, got 0"):
        chain.call(A, "updateCandidacy", key, 2 * MAX, 0, DESC)
    computation = chain.call(A, "updateCandidacy", key, 2 * MAX, 0, DESC, value=extra)
    assert computation.gas_used == DECLARE_GAS
    candidate = chain.staking.get_candidate(A)
    assert (candidate.max_amount, candidate.self_stake, candidate.shares) == (
        2 * MAX,
        SELF + extra,
        SELF + extra,
    )
    assert chain.staking.get_delegation(A, A).delegate_amount == SELF + extra
    assert chain.balance(STAKING) == SELF + extra


def test_update_max_amount_cannot_go_below_shares(chain: Chain) -> None:
    chain.declare(A, MAX)
    chain.delegate(D1, A, 500 * CMT)
    key = chain.staking.get_candidate(A).pub_key
    shares = SELF + 500 * CMT
    with reverts(f"maxAmount {shares - 1} below the candidate's shares {shares}"):
        chain.call(A, "updateCandidacy", key, shares - 1, 0, DESC)
    chain.call(A, "updateCandidacy", key, shares, 0, DESC)  # lowering needs no value
    assert chain.staking.get_candidate(A).max_amount == shares
    with reverts("extra self-stake 0 wei, got 1"):
        chain.fund(A, 1)
        chain.call(A, "updateCandidacy", key, shares, 0, DESC, value=1)


def test_update_changes_key_and_a_new_description_resets_verified(chain: Chain) -> None:
    chain.declare(A, MAX, key=b"\x01" * 32)
    chain.declare(B, MAX, key=b"\x02" * 32)
    chain.call(VERIFIER, "verifyCandidacy", A, True)
    with reverts("pubKey already used by candidate"):
        chain.call(A, "updateCandidacy", b"\x02" * 32, MAX, WAD // 5, DESC)
    chain.call(A, "updateCandidacy", b"\x03" * 32, MAX, WAD // 5, DESC)
    candidate = chain.staking.get_candidate(A)
    assert candidate.pub_key == b"\x03" * 32 and candidate.verified  # same description
    assert chain.staking.owner_of_pub_key(b"\x01" * 32) is None
    assert chain.staking.owner_of_pub_key(b"\x03" * 32) == A
    chain.call(A, "updateCandidacy", b"\x03" * 32, MAX, WAD // 5, ("new", "", "", "", ""))
    candidate = chain.staking.get_candidate(A)
    assert not candidate.verified and candidate.name == "new"
    with reverts("is not a candidate"):
        chain.call(D1, "updateCandidacy", b"\x04" * 32, MAX, 0, DESC)


def test_update_lowering_the_comp_rate_caps_delegation_rates(chain: Chain) -> None:
    chain.declare(A, MAX, comp_rate=WAD // 2)
    chain.delegate(D1, A, 10 * CMT)
    chain.delegate(D2, A, 10 * CMT)
    chain.call(A, "setCompRate", D2, WAD // 10)
    key = chain.staking.get_candidate(A).pub_key
    chain.call(A, "updateCandidacy", key, MAX, WAD // 5, DESC)
    assert chain.staking.get_delegation(A, D1).comp_rate == WAD // 5
    assert chain.staking.get_delegation(A, D2).comp_rate == WAD // 10


# -- withdrawCandidacy
def test_withdraw_candidacy_unbonds_every_delegation(chain: Chain) -> None:
    chain.declare(A, MAX)
    chain.delegate(D1, A, 100 * CMT)
    chain.elect()
    assert chain.staking.validators() == [A]
    computation = chain.call(A, "withdrawCandidacy")
    assert computation.gas_used == CALL_GAS
    assert chain.staking.get_candidate(A) is None
    assert chain.staking.validators() == []
    assert chain.staking.owner_of_pub_key(keccak256(A)) is None  # the key is free again
    assert not has_stake(chain.state, A) and not has_stake(chain.state, D1)
    assert chain.staking.pending(A, A) == SELF and chain.staking.pending(A, D1) == 100 * CMT
    withdrawn = [
        log
        for log in computation.logs
        if log[1][0] == event_topic("Withdrawn(address,address,uint256,uint256)")
    ]
    assert len(withdrawn) == 2
    mature = chain.number + chain.params.unstake_waiting_period
    assert decode(["uint256", "uint256"], withdrawn[0][2]) == (SELF, mature)
    assert chain.balance(STAKING) == staked_total(chain.staking) == SELF + 100 * CMT
    while chain.number <= mature:
        chain.end_block()
    assert chain.balance(A) == SELF and chain.balance(D1) == 100 * CMT
    assert chain.balance(STAKING) == 0
    with reverts("is not a candidate"):
        chain.call(A, "withdrawCandidacy")
    chain.declare(A, MAX)  # may declare again


# -- activate / deactivate / verify
def test_deactivate_and_activate(chain: Chain) -> None:
    chain.declare(A, MAX)
    chain.elect()
    with reverts("already active"):
        chain.call(A, "activateCandidacy")
    computation = chain.call(A, "deactivateCandidacy")
    assert decode(["bool"], computation.logs[0][2]) == (False,)
    assert not chain.staking.get_candidate(A).active
    assert chain.staking.validators() == []  # leaves the set at once
    with reverts("already inactive"):
        chain.call(A, "deactivateCandidacy")
    with reverts("is not active"):
        chain.delegate(D1, A, CMT)
    computation = chain.call(A, "activateCandidacy")
    assert decode(["bool"], computation.logs[0][2]) == (True,)
    assert chain.staking.get_candidate(A).active
    with reverts("is not a candidate"):
        chain.call(D1, "activateCandidacy")


def test_activation_is_refused_while_jailed(chain: Chain) -> None:
    chain.declare(A, MAX)
    chain.call(A, "deactivateCandidacy")
    record = chain.staking.get_candidate(A)
    chain.staking.put_candidate(record.copy(jailed_until=chain.number + 1))
    with reverts(f"jailed until block {chain.number + 1}"):
        chain.call(A, "activateCandidacy")
    chain.end_block()
    chain.call(A, "activateCandidacy")


def test_verify_only_by_the_verifier(chain: Chain) -> None:
    chain.declare(A, MAX)
    with reverts("only the verifier"):
        chain.call(A, "verifyCandidacy", A, True)
    with reverts("is not a candidate"):
        chain.call(VERIFIER, "verifyCandidacy", B, True)
    computation = chain.call(VERIFIER, "verifyCandidacy", A, True)
    assert chain.staking.get_candidate(A).verified
    assert computation.logs[0][1][1] == int.from_bytes(A, "big")
    chain.call(VERIFIER, "verifyCandidacy", A, False)
    assert not chain.staking.get_candidate(A).verified


# -- delegate / withdraw
def test_delegate(chain: Chain) -> None:
    chain.declare(A, MAX)
    computation = chain.delegate(D1, A, 300 * CMT)
    assert computation.gas_used == CALL_GAS
    assert computation.logs[0][1][1:] == [int.from_bytes(D1, "big"), int.from_bytes(A, "big")]
    chain.delegate(D1, A, 100 * CMT)
    delegation = chain.staking.get_delegation(A, D1)
    assert delegation.delegate_amount == delegation.shares == 400 * CMT
    assert delegation.comp_rate == chain.staking.get_candidate(A).comp_rate
    assert chain.staking.get_candidate(A).shares == SELF + 400 * CMT
    assert chain.staking.delegated_candidates(D1) == [A]
    assert has_stake(chain.state, D1) and not has_stake(chain.state, D2)


def test_delegate_bad_calls_revert(chain: Chain) -> None:
    chain.declare(A, MAX)
    room = MAX - SELF
    with reverts("above maxAmount"):
        chain.delegate(D1, A, room + 1)
    chain.delegate(D1, A, room)  # exactly up to maxAmount
    with reverts("positive msg.value"):
        chain.call(D2, "delegate", A)
    with reverts("is not a candidate"):
        chain.delegate(D2, B, CMT)


def test_withdraw_moves_shares_to_unbonding(chain: Chain) -> None:
    chain.declare(A, MAX)
    chain.delegate(D1, A, 300 * CMT)
    computation = chain.call(D1, "withdraw", A, 100 * CMT)
    mature = chain.number + chain.params.unstake_waiting_period
    assert decode(["uint256", "uint256"], computation.logs[0][2]) == (100 * CMT, mature)
    delegation = chain.staking.get_delegation(A, D1)
    assert (delegation.withdraw_amount, delegation.shares) == (100 * CMT, 200 * CMT)
    assert chain.staking.get_candidate(A).shares == SELF + 200 * CMT
    assert chain.staking.pending(A, D1) == 100 * CMT
    chain.call(D1, "withdraw", A, 200 * CMT)  # everything: the delegation is removed
    assert chain.staking.get_delegation(A, D1) is None
    assert chain.staking.delegators(A) == [A]
    assert not has_stake(chain.state, D1)
    assert chain.balance(STAKING) == staked_total(chain.staking)


def test_withdraw_bad_calls_revert(chain: Chain) -> None:
    chain.declare(A, MAX)
    chain.delegate(D1, A, 300 * CMT)
    chain.delegate(A, A, 50 * CMT)
    with reverts("above the delegation's shares"):
        chain.call(D1, "withdraw", A, 300 * CMT + 1)
    with reverts("must be positive"):
        chain.call(D1, "withdraw", A, 0)
    with reverts("no delegation"):
        chain.call(D2, "withdraw", A, 1)
    with reverts("is not a candidate"):
        chain.call(D1, "withdraw", B, 1)
    with reverts(f"below its self-stake {SELF}"):
        chain.call(A, "withdraw", A, 50 * CMT + 1)
    chain.call(A, "withdraw", A, 50 * CMT)  # down to the self-stake exactly


def test_unbonding_returns_funds_at_maturity_only(chain: Chain) -> None:
    chain.declare(A, MAX)
    chain.delegate(D1, A, 300 * CMT)
    chain.call(D1, "withdraw", A, 100 * CMT)
    mature = chain.number + chain.params.unstake_waiting_period
    while chain.number < mature:
        chain.end_block()
        assert chain.balance(D1) == 0
    chain.end_block()
    assert chain.balance(D1) == 100 * CMT
    assert chain.staking.pending(A, D1) == 0 and chain.staking.unbonding_heights() == []


# -- setCompRate
def test_set_comp_rate(chain: Chain) -> None:
    chain.declare(A, MAX, comp_rate=WAD // 5)
    chain.delegate(D1, A, 10 * CMT)
    with reverts("above the candidate's own rate"):
        chain.call(A, "setCompRate", D1, WAD // 5 + 1)
    with reverts("has no delegation"):
        chain.call(A, "setCompRate", D2, 0)
    with reverts("is not a candidate"):
        chain.call(D1, "setCompRate", D1, 0)
    computation = chain.call(A, "setCompRate", D1, WAD // 10)
    assert computation.gas_used == SET_COMP_RATE_GAS
    assert chain.staking.get_delegation(A, D1).comp_rate == WAD // 10
    assert computation.logs[0][1][1:] == [int.from_bytes(A, "big"), int.from_bytes(D1, "big")]


# -- framework behaviour and views
def test_value_to_a_non_payable_function_and_state_change_in_static_call(chain: Chain) -> None:
    chain.declare(A, MAX)
    chain.fund(A, 1)
    with reverts("not payable"):
        chain.call(A, "deactivateCandidacy", value=1)
    with reverts("state change in a static call"):
        chain.call(A, "deactivateCandidacy", static=True)


def test_revert_output_is_the_error_string(chain: Chain) -> None:
    chain.declare(A, MAX)
    data = chain.module.calldata("activateCandidacy")
    computation = computation_for(chain.module, chain.state, A, data)
    with pytest.raises(Revert):
        chain.module(computation)
    assert computation.output == revert_data("staking: candidacy is already active")


def test_views(chain: Chain) -> None:
    chain.declare(A, MAX, comp_rate=WAD // 5, key=b"\x07" * 32)
    chain.declare(B, MAX, key=b"\x08" * 32)
    chain.delegate(D1, A, 200 * CMT)
    chain.elect()
    pub, max_amount, rate, shares, power, active, verified, jailed = chain.view("candidate", A)
    assert (pub, max_amount, rate, shares) == (b"\x07" * 32, MAX, WAD // 5, SELF + 200 * CMT)
    assert (active, verified, jailed) == (True, False, 0)
    total = 2 * SELF + 200 * CMT
    assert power == sum(
        s * 1200 * total // (10_000 * shares) for s in (SELF, 200 * CMT)
    )  # A holds 75% > 12%: each delegation capped
    capped = 200 * CMT * 1200 * total // (10_000 * shares)
    assert chain.view("delegation", A, D1) == (200 * CMT, 0, 0, 0, WAD // 5, capped)
    assert chain.view("delegation", A, D2) == (0, 0, 0, 0, 0, 0)
    assert [a.lower() for a in chain.view("validators")] == ["0x" + A.hex(), "0x" + B.hex()]
    assert chain.view("backups") == ()
    assert chain.view("totalStake") == total
    with reverts("is not a candidate"):
        chain.view("candidate", D1)
    assert chain.call(A, "totalStake", static=True).gas_used == VIEW_GAS


def test_unknown_selector_reverts(chain: Chain) -> None:
    computation = computation_for(chain.module, chain.state, A, b"\xde\xad\xbe\xef")
    with pytest.raises(Revert, match="unknown function selector"):
        chain.module(computation)
