"""Algorithm 1 driven by hand, one event at a time (in the spirit of CometBFT's state_test.go).

Four validators of power 1 (so 2f+1 = 3 votes, f+1 = 2) unless a test says otherwise. The node
under test is validator 0. With ``StaticValidators`` the proposer of (height, round) is validator
``(height + round) % 4``: at height 1, rounds 0, 1, 2, 3 are proposed by 1, 2, 3, 0.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from simulator import StaticValidators, address, block_value, make_validators

from cybermiles.consensus.actions import (
    BroadcastProposal,
    BroadcastVote,
    Decide,
    DuplicateVoteEvidence,
    RequestValue,
    ScheduleTimeout,
)
from cybermiles.consensus.events import (
    ProposalEvent,
    StartHeight,
    TimeoutEvent,
    ValueEvent,
    VoteEvent,
)
from cybermiles.consensus.state_machine import ConsensusState
from cybermiles.consensus.timeouts import DEFAULT, FAST, TimeoutConfig
from cybermiles.consensus.types import Proposal, Step, Vote, VoteType

V = block_value(1, 0, b"v")
W = block_value(1, 0, b"w")
X = block_value(1, 0, b"x")
PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT


class Harness:
    """One ``ConsensusState`` plus shorthands to feed it messages from the other validators."""

    def __init__(
        self,
        me: int | None = 0,
        powers: Iterable[int] = (1, 1, 1, 1),
        height: int = 1,
        timeouts: TimeoutConfig = DEFAULT,
    ) -> None:
        self.validators = make_validators(list(powers))
        self.height = height
        self.cs = ConsensusState(
            None if me is None else address(me),
            height,
            lambda h: StaticValidators(self.validators, h),
            timeouts,
        )

    def start(self, height: int | None = None) -> list:
        return self.cs.handle(StartHeight(self.height if height is None else height))

    def proposal(
        self,
        round: int,
        value: bytes,
        pol_round: int = -1,
        valid: bool = True,
        proposer: int | None = None,
        height: int | None = None,
    ) -> list:
        h = self.height if height is None else height
        who = address((h + round) % 4) if proposer is None else address(proposer)
        return self.cs.handle(ProposalEvent(Proposal(h, round, value, pol_round, who), valid))

    def votes(
        self,
        type: VoteType,
        validators: Iterable[int],
        round: int,
        value: bytes | None,
        height: int | None = None,
    ) -> list:
        h = self.height if height is None else height
        out = []
        for i in validators:
            out += self.cs.handle(VoteEvent(Vote(type, h, round, value, address(i))))
        return out

    def timeout(self, round: int, step: Step, height: int | None = None) -> list:
        h = self.height if height is None else height
        return self.cs.handle(TimeoutEvent(h, round, step))


def own_votes(actions: list, type: VoteType | None = None) -> list[Vote]:
    return [
        a.vote
        for a in actions
        if isinstance(a, BroadcastVote) and (type is None or a.vote.type == type)
    ]


def own_vote(actions: list, type: VoteType) -> Vote:
    votes = own_votes(actions, type)
    assert len(votes) == 1, actions
    return votes[0]


def timeouts_of(actions: list, step: Step | None = None) -> list[ScheduleTimeout]:
    return [
        a for a in actions if isinstance(a, ScheduleTimeout) and (step is None or a.step == step)
    ]


def decisions(actions: list) -> list[Decide]:
    return [a for a in actions if isinstance(a, Decide)]


def go_to_round(h: Harness, round: int) -> None:
    """Move the node to ``round`` by firing precommit timeouts (lines 65-67), adding no votes."""
    while h.cs.round < round:
        h.timeout(h.cs.round, Step.PRECOMMIT)
    assert h.cs.round == round


def lock_on(h: Harness, round: int, value: bytes) -> None:
    """Drive a round where the node prevotes ``value`` and locks on it (CometBFT's LockNoPOL)."""
    h.proposal(round, value)
    assert own_vote(h.votes(PV, [1, 2], round, value), PC).block_hash == value
    assert (h.cs.locked_value, h.cs.locked_round) == (value, round)


# ---------------------------------------------------------------- start of a round


def test_non_proposer_waits_propose_timeout_then_prevotes_nil() -> None:
    h = Harness()
    actions = h.start()
    assert actions == [ScheduleTimeout(1, 0, Step.PROPOSE, DEFAULT.propose(0))]
    assert (h.cs.round, h.cs.step) == (0, Step.PROPOSE)
    vote = own_vote(h.timeout(0, Step.PROPOSE), PV)
    assert vote == Vote(PV, 1, 0, None, address(0))
    assert h.cs.step == Step.PREVOTE


def test_proposer_asks_for_a_value_then_proposes_and_prevotes_it() -> None:
    h = Harness(me=1)
    actions = h.start()
    assert RequestValue(1, 0) in actions
    assert timeouts_of(actions, Step.PROPOSE)  # also guards the proposer (see module doc)
    actions = h.cs.handle(ValueEvent(1, 0, V))
    assert actions[0] == BroadcastProposal(Proposal(1, 0, V, -1, address(1)))
    assert own_vote(actions, PV) == Vote(PV, 1, 0, V, address(1))
    # A late or repeated answer does nothing.
    assert h.cs.handle(ValueEvent(1, 0, W)) == []


def test_value_after_propose_timeout_is_not_proposed() -> None:
    h = Harness(me=1)
    h.start()
    h.timeout(0, Step.PROPOSE)
    assert h.cs.handle(ValueEvent(1, 0, V)) == []


def test_prevote_valid_proposal_and_nil_for_invalid_one() -> None:
    h = Harness()
    h.start()
    assert own_vote(h.proposal(0, V), PV).block_hash == V
    h2 = Harness()
    h2.start()
    assert own_vote(h2.proposal(0, V, valid=False), PV).block_hash is None


def test_proposal_from_wrong_proposer_or_bad_pol_round_is_ignored() -> None:
    h = Harness()
    h.start()
    assert h.proposal(0, V, proposer=2) == []
    assert h.proposal(0, V, pol_round=0) == []  # pol_round must be < round
    assert h.proposal(0, V, pol_round=-2) == []
    assert h.cs.step == Step.PROPOSE


def test_observer_follows_and_decides_without_voting() -> None:
    h = Harness(me=None)
    h.start()
    actions = h.proposal(0, V)
    actions += h.votes(PV, [0, 1, 2], 0, V)
    actions += h.votes(PC, [0, 1, 2], 0, V)
    assert own_votes(actions) == []
    assert [d.block_hash for d in decisions(actions)] == [V]


def test_address_outside_the_validator_set_only_observes() -> None:
    h = Harness(me=9)
    h.start()
    actions = h.proposal(0, V) + h.votes(PV, [1, 2, 3], 0, V) + h.votes(PC, [1, 2, 3], 0, V)
    assert own_votes(actions) == []
    assert [d.block_hash for d in decisions(actions)] == [V]


# ---------------------------------------------------------------- lock / POL


def test_lock_on_polka_and_precommit() -> None:
    h = Harness()
    h.start()
    h.proposal(0, V)
    assert own_votes(h.votes(PV, [1], 0, V)) == []  # 2 of 4: no polka yet
    actions = h.votes(PV, [2], 0, V)
    assert own_vote(actions, PC) == Vote(PC, 1, 0, V, address(0))
    assert (h.cs.locked_value, h.cs.locked_round) == (V, 0)
    assert (h.cs.valid_value, h.cs.valid_round) == (V, 0)
    assert h.cs.step == Step.PRECOMMIT
    # The 2f+1 prevotes (any) also started the prevote timeout, once.
    assert timeouts_of(actions, Step.PREVOTE) == [ScheduleTimeout(1, 0, Step.PREVOTE, 1000)]
    assert timeouts_of(h.votes(PV, [3], 0, V)) == []


def test_polka_before_proposal_locks_when_proposal_arrives() -> None:
    h = Harness()
    h.start()
    h.timeout(0, Step.PROPOSE)  # prevoted nil
    h.votes(PV, [1, 2, 3], 0, V)  # polka for V, but no proposal for it yet
    assert h.cs.step == Step.PREVOTE and h.cs.locked_round == -1
    actions = h.proposal(0, V)
    assert own_vote(actions, PC).block_hash == V
    assert (h.cs.locked_value, h.cs.locked_round) == (V, 0)


def test_locked_node_prevotes_nil_for_another_value_without_pol() -> None:
    """CometBFT LockNoPOL: a lock is never released without a proof of lock."""
    h = Harness()
    h.start()
    lock_on(h, 0, V)
    go_to_round(h, 1)
    assert own_vote(h.proposal(1, W), PV).block_hash is None
    assert (h.cs.locked_value, h.cs.locked_round) == (V, 0)


def test_locked_node_prevotes_its_locked_value_again() -> None:
    h = Harness()
    h.start()
    lock_on(h, 0, V)
    go_to_round(h, 1)
    assert own_vote(h.proposal(1, V), PV).block_hash == V


def test_proposal_with_pol_round_waits_for_the_pol() -> None:
    h = Harness()
    h.start()
    lock_on(h, 0, V)
    go_to_round(h, 1)
    h.proposal(1, W, pol_round=0)  # claims a POL for W in round 0 that we never saw
    assert h.cs.step == Step.PROPOSE
    assert own_vote(h.timeout(1, Step.PROPOSE), PV).block_hash is None


def test_prevote_new_value_with_pol_from_a_round_after_the_lock() -> None:
    """Line 28/29: lockedRound <= vr lets a locked node prevote the POL'd value."""
    h = Harness()
    h.start()
    lock_on(h, 0, V)
    go_to_round(h, 1)
    # Round 1: no proposal reaches us; the others prevote W (a polka for W in round 1).
    h.timeout(1, Step.PROPOSE)
    h.votes(PV, [1, 2, 3], 1, W)
    assert own_vote(h.timeout(1, Step.PREVOTE), PC).block_hash is None
    assert (h.cs.locked_value, h.cs.locked_round) == (V, 0)
    go_to_round(h, 2)
    # Round 2's proposer (3) re-proposes W with its POL round 1 >= lockedRound 0.
    assert own_vote(h.proposal(2, W, pol_round=1), PV).block_hash == W


def test_pol_from_a_round_before_the_lock_does_not_unlock() -> None:
    h = Harness()
    h.start()
    # Round 0: the others prevote W but we never see W's proposal: no lock.
    h.timeout(0, Step.PROPOSE)
    h.votes(PV, [1, 2, 3], 0, W)
    h.timeout(0, Step.PREVOTE)
    go_to_round(h, 1)
    lock_on(h, 1, V)
    go_to_round(h, 2)
    # POL round 0 < lockedRound 1 and W != lockedValue: prevote nil.
    assert own_vote(h.proposal(2, W, pol_round=0), PV).block_hash is None
    assert (h.cs.locked_value, h.cs.locked_round) == (V, 1)


def test_relock_on_a_later_polka() -> None:
    """CometBFT LockPOLRelock: a polka for W in a later round moves the lock to W."""
    h = Harness()
    h.start()
    lock_on(h, 0, V)
    go_to_round(h, 1)
    assert own_vote(h.proposal(1, W), PV).block_hash is None  # locked on V
    actions = h.votes(PV, [1, 2, 3], 1, W)
    assert own_vote(actions, PC).block_hash == W
    assert (h.cs.locked_value, h.cs.locked_round) == (W, 1)
    assert (h.cs.valid_value, h.cs.valid_round) == (W, 1)


def test_late_polka_sets_valid_value_without_locking() -> None:
    """CometBFT SetValidBlockOnDelayedPrevote: after precommitting nil, a polka only updates
    validValue/validRound (line 42)."""
    h = Harness()
    h.start()
    h.proposal(0, V)  # we prevote V
    h.votes(PV, [1], 0, None)
    h.votes(PV, [2], 0, V)  # 2f+1 prevotes, no polka: prevote timeout
    assert own_vote(h.timeout(0, Step.PREVOTE), PC).block_hash is None
    actions = h.votes(PV, [3], 0, V)  # V: 0, 2, 3 = polka
    assert own_votes(actions) == []
    assert (h.cs.valid_value, h.cs.valid_round) == (V, 0)
    assert (h.cs.locked_value, h.cs.locked_round) == (None, -1)


def test_proposer_reproposes_valid_value_with_its_pol_round() -> None:
    """CometBFT ProposeValidBlock: a proposer with a validValue proposes it, with vr = validRound.

    Height 3: round 0 is proposed by validator 3 and round 1 by validator 0 (us).
    """
    h = Harness(height=3)
    h.start()
    lock_on(h, 0, V)
    h.votes(PC, [1, 2], 0, None)
    actions = h.timeout(0, Step.PRECOMMIT)
    assert h.cs.round == 1
    assert not any(isinstance(a, RequestValue) for a in actions)
    assert BroadcastProposal(Proposal(3, 1, V, 0, address(0))) in actions
    assert own_vote(actions, PV).block_hash == V  # own proposal, locked on it anyway


def test_proposer_reproposes_valid_value_it_is_not_locked_on() -> None:
    """CometBFT SetValidBlockOnDelayedProposal: the proposal comes after our nil precommit; the
    value becomes validValue (not locked) and we re-propose it with its POL round."""
    h = Harness(height=3)
    h.start()
    h.timeout(0, Step.PROPOSE)  # prevote nil
    h.votes(PV, [1, 2, 3], 0, V)  # a polka for a value we have not seen
    assert own_vote(h.timeout(0, Step.PREVOTE), PC).block_hash is None
    assert h.cs.valid_round == -1
    assert own_votes(h.proposal(0, V)) == []
    assert (h.cs.valid_value, h.cs.valid_round, h.cs.locked_round) == (V, 0, -1)
    actions = h.timeout(0, Step.PRECOMMIT)
    assert BroadcastProposal(Proposal(3, 1, V, 0, address(0))) in actions
    assert own_vote(actions, PV).block_hash == V  # line 28: lockedRound -1 <= vr 0
    assert h.timeout(1, Step.PROPOSE) == []  # stale: past the propose step


# ---------------------------------------------------------------- rounds and timeouts


def test_nil_polka_precommits_nil_then_precommit_timeout_starts_next_round() -> None:
    """CometBFT WaitingTimeoutOnNilPolka."""
    h = Harness()
    h.start()
    h.timeout(0, Step.PROPOSE)
    actions = h.votes(PV, [1, 2], 0, None)
    assert own_vote(actions, PC) == Vote(PC, 1, 0, None, address(0))
    assert h.cs.step == Step.PRECOMMIT
    actions = h.votes(PC, [1, 2], 0, None)
    assert timeouts_of(actions) == [ScheduleTimeout(1, 0, Step.PRECOMMIT, DEFAULT.precommit(0))]
    assert h.cs.round == 0  # no round change before the timeout
    actions = h.timeout(0, Step.PRECOMMIT)
    assert (h.cs.round, h.cs.step) == (1, Step.PROPOSE)
    assert timeouts_of(actions) == [ScheduleTimeout(1, 1, Step.PROPOSE, DEFAULT.propose(1))]


def test_prevote_timeout_precommits_nil_on_split_prevotes() -> None:
    h = Harness()
    h.start()
    h.proposal(0, V)
    actions = h.votes(PV, [1], 0, W) + h.votes(PV, [2], 0, None)
    assert timeouts_of(actions, Step.PREVOTE) == [ScheduleTimeout(1, 0, Step.PREVOTE, 1000)]
    assert own_vote(h.timeout(0, Step.PREVOTE), PC).block_hash is None


def test_precommit_timeout_is_scheduled_in_any_step_once_per_round() -> None:
    h = Harness()
    h.start()
    actions = h.votes(PC, [1, 2, 3], 0, None)
    assert timeouts_of(actions) == [ScheduleTimeout(1, 0, Step.PRECOMMIT, 1000)]
    assert h.cs.step == Step.PROPOSE
    assert timeouts_of(h.votes(PC, [0], 0, None)) == []


def test_stale_timeouts_are_ignored() -> None:
    h = Harness()
    assert h.timeout(0, Step.PROPOSE) == []  # not started
    h.start()
    assert h.timeout(0, Step.PREVOTE) == []  # still in the propose step
    h.timeout(0, Step.PROPOSE)
    assert h.timeout(0, Step.PROPOSE) == []  # already prevoted
    go_to_round(h, 2)
    assert h.timeout(1, Step.PRECOMMIT) == []  # old round
    assert h.timeout(2, Step.PROPOSE, height=2) == []  # other height
    assert (h.cs.round, h.cs.step) == (2, Step.PROPOSE)


def test_timeouts_grow_linearly_with_the_round() -> None:
    assert [DEFAULT.propose(r) for r in range(3)] == [3000, 3500, 4000]
    assert [DEFAULT.prevote(r) for r in range(3)] == [1000, 1500, 2000]
    assert [DEFAULT.precommit(r) for r in range(3)] == [1000, 1500, 2000]
    assert DEFAULT.commit_ms == 1000
    assert (FAST.propose(2), FAST.prevote(2), FAST.precommit(2)) == (42, 12, 12)
    with pytest.raises(ValueError):
        TimeoutConfig(propose_ms=-1)

    h = Harness()
    h.start()
    seen = []
    for r in range(4):
        h.timeout(r, Step.PROPOSE)
        seen += timeouts_of(h.votes(PV, [1, 2], r, None), Step.PREVOTE)
        h.timeout(r, Step.PREVOTE)
        seen += timeouts_of(h.votes(PC, [1, 2], r, None), Step.PRECOMMIT)
        seen += timeouts_of(h.timeout(r, Step.PRECOMMIT), Step.PROPOSE)
    # Round 3 is ours at height 1, so its propose timeout comes with a RequestValue.
    by_step = {s: [t.duration_ms for t in seen if t.step == s] for s in Step}
    assert by_step[Step.PREVOTE] == [1000, 1500, 2000, 2500]
    assert by_step[Step.PRECOMMIT] == [1000, 1500, 2000, 2500]
    assert by_step[Step.PROPOSE] == [3500, 4000, 4500, 5000]


def test_timeouts_reset_at_the_next_height() -> None:
    h = Harness()
    h.start()
    go_to_round(h, 3)
    h.cs.handle(ValueEvent(1, 3, V))
    h.votes(PV, [1, 2], 3, V)
    decide = decisions(h.votes(PC, [1, 2, 3], 3, V))
    assert decide and decide[0].round == 3
    actions = h.start(2)
    assert timeouts_of(actions) == [ScheduleTimeout(2, 0, Step.PROPOSE, 3000)]


def test_round_skip_on_f_plus_one_messages_from_a_higher_round() -> None:
    """Line 55: f+1 (by power) messages of any type from round > current start that round."""
    h = Harness()
    h.start()
    assert h.votes(PV, [1], 3, None) == []  # 1 of 4 is not > 1/3
    actions = h.votes(PC, [2], 3, V)  # 2 of 4, mixed types and values
    assert (h.cs.round, h.cs.step) == (3, Step.PROPOSE)
    assert RequestValue(1, 3) in actions  # round 3 is ours
    assert timeouts_of(actions) == [ScheduleTimeout(1, 3, Step.PROPOSE, DEFAULT.propose(3))]
    # A proposal counts as a message from its proposer.
    h2 = Harness()
    h2.start()
    h2.votes(PV, [1], 2, None)
    h2.proposal(2, V)  # round 2's proposer is validator 3
    assert h2.cs.round == 2


def test_round_skip_counts_power_not_heads() -> None:
    h = Harness(powers=(1, 3, 1, 1))  # total 6: validator 1 alone holds > 1/3
    h.start()
    h.votes(PV, [1], 5, None)
    assert h.cs.round == 5
    h2 = Harness(powers=(3, 1, 1, 1))
    h2.start()
    h2.votes(PV, [1, 2], 5, None)  # 2 of 6 is not > 1/3
    assert h2.cs.round == 0


def test_round_skip_to_the_highest_round_and_never_back() -> None:
    h = Harness()
    h.start()
    h.votes(PV, [1, 2], 4, None)
    assert h.cs.round == 4
    h.votes(PV, [1, 2], 2, None)
    assert h.cs.round == 4


def test_polka_needs_more_than_two_thirds_of_the_power() -> None:
    h = Harness(powers=(1, 1, 1, 3))  # total 6: 2f+1 means power >= 5
    h.start()
    h.proposal(0, V)  # proposer 1; we prevote V
    assert own_votes(h.votes(PV, [1, 2], 0, V)) == []  # 3 of 6
    assert own_vote(h.votes(PV, [3], 0, V), PC).block_hash == V  # 6 of 6


# ---------------------------------------------------------------- deciding


def test_decide_on_proposal_and_two_thirds_precommits() -> None:
    h = Harness()
    h.start()
    h.proposal(0, V)
    h.votes(PV, [1, 2], 0, V)
    actions = h.votes(PC, [2, 1], 0, V)
    [d] = decisions(actions)
    assert (d.height, d.round, d.block_hash) == (1, 0, V)
    assert d.proposal == Proposal(1, 0, V, -1, address(1))
    assert [v.validator for v in d.precommits] == [address(0), address(1), address(2)]
    assert h.cs.decision == d
    # Nothing more happens at a decided height.
    assert h.votes(PC, [3], 0, V) == []
    assert h.timeout(0, Step.PRECOMMIT) == []


def test_commit_from_an_earlier_round() -> None:
    """CometBFT CommitFromPreviousRound: precommits for round 0 arrive while in round 1."""
    h = Harness()
    h.start()
    h.proposal(0, V)
    h.votes(PV, [1, 2], 0, V)  # locked, precommitted V
    h.votes(PC, [1, 2], 1, None)  # f+1 from round 1
    assert h.cs.round == 1
    [d] = decisions(h.votes(PC, [1, 2], 0, V))
    assert (d.round, d.block_hash) == (0, V)


def test_commit_from_an_earlier_round_when_the_proposal_comes_last() -> None:
    h = Harness()
    h.start()
    h.timeout(0, Step.PROPOSE)
    h.votes(PV, [1, 2], 1, None)
    assert h.cs.round == 1
    assert decisions(h.votes(PC, [1, 2, 3], 0, V)) == []  # no proposal for V yet
    [d] = decisions(h.proposal(0, V))
    assert (d.round, d.block_hash) == (0, V)


def test_no_decision_for_an_invalid_block() -> None:
    """Line 50: 2f+1 precommits do not make an invalid value decided."""
    h = Harness()
    h.start()
    h.proposal(0, V, valid=False)
    assert decisions(h.votes(PC, [1, 2, 3], 0, V)) == []
    assert h.cs.decision is None


def test_messages_for_the_next_height_are_buffered() -> None:
    h = Harness()
    h.start()
    h.proposal(0, V)
    h.votes(PV, [1, 2], 0, V)
    h.votes(PC, [1, 2], 0, V)
    assert h.cs.decision is not None
    # Height 2 arrives before we start it; height 3 is too far ahead and dropped.
    assert h.proposal(0, W, height=2) == []
    assert h.votes(PC, [1, 2, 3], 0, W, height=2) == []
    assert h.votes(PC, [1, 2, 3], 0, X, height=3) == []
    actions = h.start(2)
    [d] = decisions(actions)
    assert (d.height, d.block_hash) == (2, W)
    assert (h.cs.locked_round, h.cs.valid_round) == (-1, -1)


def test_buffer_is_bounded() -> None:
    h = Harness()
    h.cs = ConsensusState(
        address(0), 1, lambda ht: StaticValidators(h.validators, ht), DEFAULT, max_buffered=2
    )
    h.start()
    h.votes(PC, [1, 2, 3], 0, W, height=2)  # only the first 2 kept
    h.proposal(0, W, height=2)
    h.votes(PV, [1, 2], 0, V)
    h.proposal(0, V)
    h.votes(PC, [1, 2], 0, V)
    actions = h.start(2)
    assert decisions(actions) == []
    assert h.cs.height == 2


def test_start_height_jumps_ahead_and_ignores_old_or_repeated_starts() -> None:
    h = Harness()
    h.start()
    assert h.start() == []
    h.start(5)
    assert (h.cs.height, h.cs.round, h.cs.started) == (5, 0, True)
    assert h.start(4) == []


def test_messages_before_start_are_logged_but_rules_wait() -> None:
    h = Harness()
    h.proposal(0, V)
    assert h.votes(PV, [1, 2, 3], 0, V) == []
    actions = h.start()
    assert own_vote(actions, PV).block_hash == V
    assert own_vote(actions, PC).block_hash == V


# ---------------------------------------------------------------- bad votes


def test_votes_from_non_validators_and_duplicates_are_ignored() -> None:
    h = Harness()
    h.start()
    h.timeout(0, Step.PROPOSE)
    assert h.votes(PV, [9], 0, None) == []  # not a validator: ignored
    assert h.votes(PV, [1, 1, 1], 0, None) == []  # counted once: 2 of 4
    assert h.cs.step == Step.PREVOTE
    assert own_vote(h.votes(PV, [2], 0, None), PC).block_hash is None


def test_double_vote_yields_evidence_once_and_is_not_counted_twice() -> None:
    h = Harness()
    h.start()
    h.timeout(0, Step.PROPOSE)  # we prevote nil
    h.votes(PV, [1], 0, None)
    actions = h.votes(PV, [1], 0, V)
    evidence = [a for a in actions if isinstance(a, DuplicateVoteEvidence)]
    assert evidence == [
        DuplicateVoteEvidence(Vote(PV, 1, 0, None, address(1)), Vote(PV, 1, 0, V, address(1)))
    ]
    # Validator 1 counts once toward "any prevote": still 2 of 4, no prevote timeout.
    assert timeouts_of(actions) == []
    assert h.votes(PV, [1], 0, V) == []  # the same conflicting vote again: nothing new
    assert timeouts_of(h.votes(PV, [2], 0, V), Step.PREVOTE)


def test_double_precommit_yields_evidence_and_counts_toward_its_value() -> None:
    """The conflicting vote counts for its own value (as in the paper's message log), so a node
    that saw a double-voter's other precommit first can still decide from the same commit."""
    h = Harness()
    h.start()
    h.proposal(0, V)
    h.votes(PV, [1], 0, None)
    h.timeout(0, Step.PROPOSE)
    h.votes(PV, [2], 0, None)  # nil polka: we precommit nil
    assert own_votes(h.votes(PC, [3], 0, None)) == []
    actions = h.votes(PC, [1, 2], 0, V) + h.votes(PC, [3], 0, V)
    assert [type(a) for a in actions if not isinstance(a, ScheduleTimeout)] == [
        DuplicateVoteEvidence,
        Decide,
    ]
    [d] = decisions(actions)
    assert [v.validator for v in d.precommits] == [address(1), address(2), address(3)]


def test_many_conflicting_values_are_bounded() -> None:
    h = Harness()
    h.start()
    values = [block_value(1, 0, b"spam", i) for i in range(10)]
    evidence = []
    for value in values:
        evidence += [a for a in h.votes(PV, [1], 0, value) if isinstance(a, DuplicateVoteEvidence)]
    assert len(evidence) == 9
    log = h.cs._rounds[0].prevotes
    assert sum(address(1) in vs for vs in log.by_value.values()) == 4


def test_own_votes_fed_back_are_duplicates() -> None:
    h = Harness()
    h.start()
    [vote] = own_votes(h.proposal(0, V))
    assert h.cs.handle(VoteEvent(vote)) == []


def test_unknown_event_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Harness().cs.handle("start")  # type: ignore[arg-type]


def test_same_events_give_same_actions() -> None:
    """Replaying the events (as a WAL does) reproduces the actions exactly."""
    events = [
        StartHeight(1),
        ProposalEvent(Proposal(1, 0, V, -1, address(1)), True),
        VoteEvent(Vote(PV, 1, 0, V, address(2))),
        VoteEvent(Vote(PV, 1, 0, None, address(3))),
        TimeoutEvent(1, 0, Step.PREVOTE),
        VoteEvent(Vote(PV, 1, 0, V, address(1))),
        VoteEvent(Vote(PC, 1, 1, None, address(1))),
        VoteEvent(Vote(PC, 1, 1, None, address(3))),
        TimeoutEvent(1, 1, Step.PROPOSE),
    ]
    runs = []
    for _ in range(2):
        cs = Harness().cs
        runs.append([cs.handle(e) for e in events])
    assert runs[0] == runs[1]
    assert any(runs[0])


# ---------------------------------------------------------------- a scripted attack on locks


class _NoLockState(ConsensusState):
    """A mutant that ignores its lock when prevoting (lines 23 and 29 without the lock test)."""

    def _rule_prevote_on_proposal(self) -> bool:
        log = self._rounds.get(self._round)
        if self._step != Step.PROPOSE or log is None or not log.proposals:
            return False
        proposal, valid = next(iter(log.proposals.values()))
        self._broadcast_vote(PV, proposal.block_hash if valid else None)
        self._step = Step.PREVOTE
        return True


@pytest.mark.parametrize(("machine", "forks"), [(ConsensusState, False), (_NoLockState, True)])
def test_locks_prevent_the_amnesia_fork(machine: type[ConsensusState], forks: bool) -> None:
    """Validators A=0, B=1, C=2 are honest, Z=3 is byzantine; the network is scripted.

    Round 0: all lock on V; A decides V with Z's precommit, which B and C never see (Z sends
    them a nil precommit). Round 1: C's re-proposal of V is lost, so the round fails. Round 2: Z
    proposes W. Locked B and C prevote nil: no fork. The mutant without locks decides W.
    """
    validators = make_validators([1, 1, 1, 1])
    nodes = {
        i: machine(address(i), 1, lambda ht: StaticValidators(validators, ht), DEFAULT)
        for i in (0, 1, 2)
    }
    decided: dict[int, bytes] = {}
    sent: dict[int, list] = {i: [] for i in nodes}

    def run(i: int, event) -> list:
        actions = nodes[i].handle(event)
        sent[i] += [a for a in actions if isinstance(a, BroadcastVote | BroadcastProposal)]
        for d in decisions(actions):
            decided[i] = d.block_hash
        return actions

    def deliver(message: Proposal | Vote, to: Iterable[int]) -> None:
        for j in to:
            if isinstance(message, Proposal):
                run(j, ProposalEvent(message, True))
            else:
                run(j, VoteEvent(message))

    def flush(i: int, to: Iterable[int], type: VoteType) -> None:
        """Deliver the votes of ``type`` that ``i`` broadcast (and not yet delivered) to ``to``."""
        keep = []
        for a in sent[i]:
            if isinstance(a, BroadcastVote) and a.vote.type == type:
                deliver(a.vote, to)
            else:
                keep.append(a)
        sent[i] = keep

    def z(type: VoteType, round: int, value: bytes | None, to: Iterable[int]) -> None:
        deliver(Vote(type, 1, round, value, address(3)), to)

    for i in nodes:
        run(i, StartHeight(1))
    # Round 0 (proposer B): everyone prevotes V; A, B, C lock on V and precommit it.
    run(1, ValueEvent(1, 0, V))
    deliver(sent[1].pop(0).proposal, [0, 2])
    z(PV, 0, V, [0, 1, 2])
    for i in (0, 1, 2):
        flush(i, [j for j in (0, 1, 2) if j != i], PV)
    assert all(n.locked_value == V for n in nodes.values())
    # A sees B's precommit and Z's precommit for V and decides; B and C see each other's and a
    # nil precommit from Z, but A's precommit is lost.
    flush(1, [0, 2], PC)
    flush(2, [1], PC)
    z(PC, 0, V, [0])
    z(PC, 0, None, [1, 2])
    assert decided == {0: V}
    for i in (1, 2):
        run(i, TimeoutEvent(1, 0, Step.PRECOMMIT))
    # Round 1 (proposer C re-proposes V): the proposal never reaches B; the round fails.
    assert nodes[2].round == 1
    assert sent[2].pop(0).proposal == Proposal(1, 1, V, 0, address(2))
    run(1, TimeoutEvent(1, 1, Step.PROPOSE))
    z(PV, 1, None, [1, 2])
    flush(1, [2], PV)
    flush(2, [1], PV)
    for i in (1, 2):
        run(i, TimeoutEvent(1, 1, Step.PREVOTE))
    z(PC, 1, None, [1, 2])
    flush(1, [2], PC)
    flush(2, [1], PC)
    for i in (1, 2):
        run(i, TimeoutEvent(1, 1, Step.PRECOMMIT))
        assert nodes[i].round == 2
    # Round 2 (proposer Z) proposes W to B and C.
    deliver(Proposal(1, 2, W, -1, address(3)), [1, 2])
    z(PV, 2, W, [1, 2])
    flush(1, [2], PV)
    flush(2, [1], PV)
    z(PC, 2, W, [1, 2])
    flush(1, [2], PC)
    flush(2, [1], PC)
    if forks:
        assert decided == {0: V, 1: W, 2: W}  # the checker is not vacuous: no locks, a fork
    else:
        assert decided == {0: V}
        assert all(nodes[i].locked_value == V for i in (1, 2))
