"""Governance vote counting and decision rules: pure functions over a PowerTable."""

from __future__ import annotations

import pytest

from cybermiles.modules.governance.records import (
    ChangeParam,
    Proposal,
    Status,
    Tally,
    Text,
    TransferFund,
    Upgrade,
    decode_proposal,
    encode_proposal,
)
from cybermiles.modules.governance.tally import approves, decide, has_quorum, passes_early, tally
from cybermiles.modules.staking.power import PowerTable

YES, NO, ABSTAIN = 0, 1, 2
C1, C2 = b"\xc1" * 20, b"\xc2" * 20
D1, D2, D3 = b"\xd1" * 20, b"\xd2" * 20, b"\xd3" * 20
OUTSIDER = b"\xee" * 20


def table(delegations: dict[bytes, dict[bytes, int]]) -> PowerTable:
    candidates = {c: sum(d.values()) for c, d in delegations.items()}
    return PowerTable(candidates, delegations, sum(candidates.values()))


# C1 (self 10) with D1 30 and D2 20; C2 (self 15) with D1 5 and D3 20. Total 100.
POWER = table({C1: {C1: 10, D1: 30, D2: 20}, C2: {C2: 15, D1: 5, D3: 20}})


def test_no_votes_count_nothing() -> None:
    assert tally(POWER, {}) == Tally(0, 0, 0)


def test_candidate_vote_carries_its_silent_delegations() -> None:
    assert tally(POWER, {C1: YES}) == Tally(yes=60)


def test_delegator_vote_overrides_its_candidates_for_that_delegation_only() -> None:
    # D2 says no on C1's delegation; C1's yes keeps C1's own 10 and D1's 30.
    assert tally(POWER, {C1: YES, D2: NO}) == Tally(yes=40, no=20)


def test_delegator_vote_applies_to_all_its_delegations() -> None:
    # D1 delegates to both candidates: 30 on C1 and 5 on C2, both follow D1's abstain.
    assert tally(POWER, {C1: YES, C2: NO, D1: ABSTAIN}) == Tally(yes=30, no=35, abstain=35)


def test_delegator_votes_without_candidate_vote() -> None:
    assert tally(POWER, {D3: NO}) == Tally(no=20)


def test_voters_without_power_count_nothing() -> None:
    assert tally(POWER, {OUTSIDER: YES}) == Tally(0, 0, 0)


def test_early_pass_needs_two_thirds_of_all_power() -> None:
    assert passes_early(Tally(yes=67), 100)  # 201 >= 200
    assert passes_early(Tally(yes=2), 3)  # exactly 2/3
    assert not passes_early(Tally(yes=66), 100)
    assert decide(Tally(yes=67), 100, voting_ended=False) is Status.PASSED
    assert decide(Tally(yes=66, no=1), 100, voting_ended=False) is Status.VOTING


def test_quorum_is_a_third_of_all_power_counting_abstain() -> None:
    assert has_quorum(Tally(abstain=1), 3)
    assert has_quorum(Tally(yes=10, no=10, abstain=14), 100)  # 102 >= 100
    assert not has_quorum(Tally(yes=10, no=10, abstain=13), 100)  # 99 < 100


def test_approval_is_two_thirds_of_yes_and_no() -> None:
    assert approves(Tally(yes=2, no=1))
    assert not approves(Tally(yes=2, no=2))
    assert approves(Tally(yes=1, abstain=100))  # abstain is not in the ratio
    assert not approves(Tally(abstain=5))  # yes > 0 is required


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (Tally(yes=20, no=10, abstain=10), Status.PASSED),  # quorum 40, 20*3 >= 30*2
        (Tally(yes=19, no=10, abstain=10), Status.REJECTED),  # 57 < 58
        (Tally(abstain=34), Status.REJECTED),  # quorum but no yes
        (Tally(yes=20, no=10, abstain=3), Status.EXPIRED),  # 33 * 3 = 99 < 100
        (Tally(), Status.EXPIRED),
        (Tally(yes=70), Status.PASSED),
    ],
)
def test_decision_at_the_end_of_voting(result: Tally, status: Status) -> None:
    assert decide(result, 100, voting_ended=True) is status


def test_no_power_at_all_never_passes_and_expires() -> None:
    assert not passes_early(Tally(), 0)
    assert decide(Tally(), 0, voting_ended=False) is Status.VOTING
    assert decide(Tally(), 0, voting_ended=True) is Status.EXPIRED


@pytest.mark.parametrize(
    "detail",
    [
        TransferFund(b"\x01" * 20, 10**20, "grant ✓"),
        ChangeParam("max_vals", 21, 500),
        Upgrade("v2 upgrade", "0.2.0", 1000),
        Text("title", "body\nwith lines"),
    ],
)
def test_proposal_record_round_trips(detail: object) -> None:
    proposal = Proposal(
        id=7,
        proposer=b"\x02" * 20,
        deposit=10**20,
        start_height=5,
        expire_height=60485,
        detail=detail,  # type: ignore[arg-type]
        status=Status.REJECTED,
        end_height=60485,
        tally=Tally(1, 2, 3),
    )
    assert decode_proposal(encode_proposal(proposal)) == proposal
