"""Proposer selection: CometBFT's weighted round robin, checked against its own test vectors."""

from __future__ import annotations

from collections import Counter

import pytest

from cybermiles.consensus import proposer as proposer_module
from cybermiles.consensus.proposer import (
    INT64_MAX,
    INT64_MIN,
    MAX_TOTAL_VOTING_POWER,
    InvalidValidatorSet,
    ValidatorSet,
    _add_clip,
    _div_trunc,
    _sub_clip,
)
from cybermiles.consensus.types import Validator

KEY = b"\x11" * 32


def val(address: bytes | int, power: int) -> Validator:
    if isinstance(address, int):
        address = address.to_bytes(20, "big")
    return Validator(address, KEY, power)


def height_sequence(vs: ValidatorSet, heights: int) -> list[bytes]:
    """Round-0 proposers of ``heights`` consecutive heights."""
    out = []
    for _ in range(heights):
        out.append(vs.proposer(0))
        vs = vs.advance()
    return out


def test_spec_example_powers_1_and_3() -> None:
    vs = ValidatorSet.from_validators([val(1, 1), val(2, 3)])
    p1, p2 = val(1, 1).address, val(2, 3).address
    assert height_sequence(vs, 8) == [p2, p1, p2, p2] * 2


def test_cometbft_proposer_selection1_vector() -> None:
    # CometBFT types/validator_set_test.go TestProposerSelection1 (99 elections).
    vs = ValidatorSet.from_validators([val(b"foo", 1000), val(b"bar", 300), val(b"baz", 330)])
    expected = (
        "foo baz foo bar foo foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar foo foo "
        "baz foo bar foo foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar foo baz foo "
        "foo bar foo baz foo foo bar foo baz foo foo foo baz bar foo foo foo baz foo bar foo foo "
        "baz foo bar foo foo baz foo bar foo foo baz foo bar foo foo baz foo foo bar foo baz foo "
        "foo bar foo baz foo foo bar foo baz foo foo"
    )
    assert " ".join(a.decode() for a in height_sequence(vs, 99)) == expected
    # And the priorities Go prints for the first elections (bar, baz, foo order).
    assert vs.priorities == (300, 330, -630)
    assert vs.advance().priorities == (600, -970, 370)
    assert vs.advance(2).priorities == (900, -640, -260)


def test_cometbft_proposer_selection2_ties_and_counts() -> None:
    a0, a1, a2 = (val(i, 100).address for i in range(3))
    # Equal power: in address order.
    vs = ValidatorSet.from_validators([val(0, 100), val(1, 100), val(2, 100)])
    assert height_sequence(vs, 15) == [a0, a1, a2] * 5
    # 400 is not enough to propose twice in a row; 401 is.
    vs = ValidatorSet.from_validators([val(0, 100), val(1, 100), val(2, 400)])
    assert height_sequence(vs, 2) == [a2, a0]
    vs = ValidatorSet.from_validators([val(0, 100), val(1, 100), val(2, 401)])
    assert height_sequence(vs, 3) == [a2, a2, a0]
    # Proportional counts.
    vs = ValidatorSet.from_validators([val(0, 4), val(1, 5), val(2, 3)])
    counts = Counter(height_sequence(vs, 120))
    assert counts == {a0: 40, a1: 50, a2: 30}


def test_cometbft_averaging_with_voting_power_vector() -> None:
    # CometBFT TestAveragingInIncrementProposerPriorityWithVotingPower.
    vp0, vp1, vp2 = 10, 1, 1
    total = 12
    base = ValidatorSet(
        [val(b"\x00", vp0), val(b"\x01", vp1), val(b"\x02", vp2)], [0, 0, 0], b"\x00"
    )
    cases = {
        1: ([vp0 - total, vp1, vp2], b"\x00"),
        2: ([2 * (vp0 - total), 2 * vp1, 2 * vp2], b"\x00"),
        3: ([3 * (vp0 - total), 3 * vp1, 3 * vp2], b"\x00"),
        4: ([4 * (vp0 - total), 4 * vp1, 4 * vp2], b"\x00"),
        5: ([4 * (vp0 - total) + vp0, 5 * vp1 - total, 5 * vp2], b"\x01"),
        6: ([6 * vp0 - 5 * total, 6 * vp1 - total, 6 * vp2], b"\x00"),
        7: ([7 * vp0 - 6 * total, 7 * vp1 - total, 7 * vp2], b"\x00"),
        8: ([8 * vp0 - 7 * total, 8 * vp1 - total, 8 * vp2], b"\x00"),
        9: ([9 * vp0 - 7 * total, 9 * vp1 - total, 9 * vp2 - total], b"\x02"),
        10: ([10 * vp0 - 8 * total, 10 * vp1 - total, 10 * vp2 - total], b"\x00"),
        11: ([11 * vp0 - 9 * total, 11 * vp1 - total, 11 * vp2 - total], b"\x00"),
    }
    for times, (priorities, proposer) in cases.items():
        after = base.advance(times)
        assert list(after.priorities) == priorities, times
        assert after.proposer(0) == proposer, times
        assert base.proposer(times) == proposer, times


@pytest.mark.parametrize(
    "powers",
    [[1, 3], [1, 2, 3, 4], [5, 5, 5], [1, 1, 10], [7, 13, 29, 51], [100, 1, 1, 1, 1, 1, 1]],
)
def test_fairness_every_window_of_p_elections(powers: list[int]) -> None:
    vs = ValidatorSet.from_validators([val(i + 1, p) for i, p in enumerate(powers)])
    total = sum(powers)
    expected = {val(i + 1, p).address: p for i, p in enumerate(powers)}
    sequence = height_sequence(vs, 5 * total)
    for start in range(0, len(sequence), total):
        assert Counter(sequence[start : start + total]) == expected
    # Rounds within one height follow the same fair sequence.
    rounds = [vs.proposer(r) for r in range(total)]
    assert Counter(rounds) == expected


def test_times_greater_than_one_keeps_order_for_equal_powers() -> None:
    # CometBFT TestProposerSelection3: jumping several increments keeps the cyclic order.
    vs = ValidatorSet.from_validators([val(b"a", 1), val(b"b", 1), val(b"c", 1), val(b"d", 1)])
    order = height_sequence(vs, 4)
    j = 0
    for times in [1, 3, 2, 5, 1, 4, 4, 2, 1, 1, 3] * 5:
        assert vs.proposer(0) == order[j % 4]
        assert vs.proposer(times) == order[(j + times) % 4]
        vs = vs.advance(times)
        j += times


def test_proposer_round_is_pure_and_matches_stepping() -> None:
    vs = ValidatorSet.from_validators([val(1, 3), val(2, 5), val(3, 7)])
    before = (vs.priorities, vs.proposer(0))
    by_round = [vs.proposer(r) for r in range(20)]
    assert (vs.priorities, vs.proposer(0)) == before
    assert by_round == height_sequence(vs, 20)  # stable set: no rescale between steps
    with pytest.raises(ValueError):
        vs.proposer(-1)


def test_new_validator_starts_at_minus_1_125_p() -> None:
    vs = ValidatorSet.from_validators([val(1, 40), val(2, 40)])
    assert vs.priorities == (-40, 40)  # a0 proposed first (tie -> lower address)
    changed = vs.with_changes([val(3, 20)])
    # P after the update is 100; the newcomer starts at -(100 + 100 >> 3) = -112.
    # Window 2P = 200 holds the spread (152), so no rescale; the sum -112 centres by
    # floor(-112 / 3) = -38.
    assert changed.priorities == (-40 + 38, 40 + 38, -112 + 38)
    assert changed.priority_of(val(3, 20).address) == -74
    # The newcomer does not propose until it has caught up.
    sequence = height_sequence(changed.advance(), 4)
    assert val(3, 20).address not in sequence


def test_rejoining_does_not_reset_a_negative_priority_upward() -> None:
    vs = ValidatorSet.from_validators([val(1, 10), val(2, 10), val(3, 10)])
    left = vs.with_changes([val(1, 0)]).advance()
    back = left.with_changes([val(1, 10)])
    total = 30
    assert back.priority_of(val(1, 10).address) < 0
    assert back.priority_of(val(1, 10).address) == min(back.priorities)
    # The newcomer's start, before centring, is exactly -(P + P >> 3).
    assert -(total + (total >> 3)) == -33


def test_rescale_with_large_power_differences() -> None:
    vs = ValidatorSet.from_validators([val(1, 1), val(2, 1)])
    big = vs.with_changes([val(3, 10**15)])
    total = big.total_power
    assert max(big.priorities) - min(big.priorities) <= 2 * total
    # A set whose priorities are far apart is rescaled before electing.
    wide = ValidatorSet([val(1, 1), val(2, 1), val(3, 1)], [-10, 3, 7], val(1, 1).address)
    after = wide.advance()
    # diff 17 > 2P = 6: ratio ceil(17/6) = 3, /3 truncated -> (-3, 1, 2), sum 0, +1 each
    # -> (-2, 2, 3): the third proposes and pays 3.
    assert after.priorities == (-2, 2, 0)
    assert after.proposer(0) == val(3, 1).address
    # Priorities stay inside the window over many heights, even with extreme powers.
    vs = ValidatorSet.from_validators([val(1, 1), val(2, 10**9), val(3, 10**17)])
    for _ in range(200):
        vs = vs.advance()
        assert max(vs.priorities) - min(vs.priorities) <= 2 * vs.total_power + 10**17


def test_truncating_division_not_floor() -> None:
    assert _div_trunc(-7, 2) == -3 and -7 // 2 == -4
    assert _div_trunc(7, 2) == 3
    assert _div_trunc(-6, 3) == -2
    # Powers (1, 2, 2), priorities (2, -19, -1): P = 5, diff 21 > 10, ratio 3.
    #   Go:     (0, -6, 0)  sum -6 avg -2 -> (2, -4, 2) +VP (3, -2, 4) -> v3 proposes.
    #   floor:  (0, -7, -1) sum -8 avg -3 -> (3, -4, 2) +VP (4, -2, 4) -> tie -> v1 proposes.
    vals = [val(1, 1), val(2, 2), val(3, 2)]
    vs = ValidatorSet(vals, [2, -19, -1], vals[0].address)
    after = vs.advance()
    assert after.proposer(0) == vals[2].address
    assert after.priorities == (3, -2, -1)


def test_python_floor_would_pick_a_different_proposer(monkeypatch: pytest.MonkeyPatch) -> None:
    vals = [val(1, 1), val(2, 2), val(3, 2)]
    vs = ValidatorSet(vals, [2, -19, -1], vals[0].address)
    monkeypatch.setattr(proposer_module, "_div_trunc", lambda a, b: a // b)
    assert vs.advance().proposer(0) == vals[0].address  # the wrong (non-Go) answer


def test_int64_clipping() -> None:
    # CometBFT TestSafeAddClip / TestSafeSubClip.
    assert _add_clip(INT64_MAX, 10) == INT64_MAX
    assert _add_clip(INT64_MAX, INT64_MAX) == INT64_MAX
    assert _add_clip(INT64_MIN, -10) == INT64_MIN
    assert _sub_clip(INT64_MIN, 10) == INT64_MIN
    assert _sub_clip(INT64_MIN, INT64_MIN) == 0
    assert _sub_clip(INT64_MIN, INT64_MAX) == INT64_MIN
    assert _sub_clip(INT64_MAX, -10) == INT64_MAX


def test_max_total_voting_power() -> None:
    assert MAX_TOTAL_VOTING_POWER == (2**63 - 1) // 8
    ValidatorSet.from_validators([val(1, MAX_TOTAL_VOTING_POWER)])
    with pytest.raises(InvalidValidatorSet, match="exceeds"):
        ValidatorSet.from_validators([val(1, MAX_TOTAL_VOTING_POWER), val(2, 1)])
    vs = ValidatorSet.from_validators([val(1, MAX_TOTAL_VOTING_POWER - 10)])
    with pytest.raises(InvalidValidatorSet, match="exceed"):
        vs.with_changes([val(2, 11)])
    # Replacing a big validator by another fits: removals count first.
    swapped = vs.with_changes([val(1, 0), val(2, MAX_TOTAL_VOTING_POWER)])
    assert swapped.total_power == MAX_TOTAL_VOTING_POWER


def test_invalid_sets_and_changes() -> None:
    with pytest.raises(InvalidValidatorSet, match="empty"):
        ValidatorSet.from_validators([])
    with pytest.raises(InvalidValidatorSet, match="duplicate"):
        ValidatorSet.from_validators([val(1, 1), val(1, 2)])
    with pytest.raises(InvalidValidatorSet, match="positive"):
        ValidatorSet.from_validators([val(1, 0)])
    with pytest.raises(InvalidValidatorSet, match="public key"):
        ValidatorSet.from_validators([Validator(b"\x01" * 20, b"short", 1)])
    vs = ValidatorSet.from_validators([val(1, 1), val(2, 1)])
    with pytest.raises(InvalidValidatorSet, match="empty"):
        vs.with_changes([val(1, 0), val(2, 0)])
    with pytest.raises(InvalidValidatorSet, match="not a validator"):
        vs.with_changes([val(9, 0)])
    with pytest.raises(InvalidValidatorSet, match="duplicate"):
        vs.with_changes([val(3, 1), val(3, 2)])
    with pytest.raises(InvalidValidatorSet, match="positive"):
        vs.with_changes([val(3, -1)])
    assert vs.with_changes([]) is vs
    with pytest.raises(InvalidValidatorSet, match="not in the validator set"):
        ValidatorSet([val(1, 1)], [0], val(2, 1).address)


def test_removal_and_power_change() -> None:
    vs = ValidatorSet.from_validators([val(1, 10), val(2, 20), val(3, 30)])
    removed = vs.with_changes([val(2, 0)])
    assert val(2, 1).address not in removed
    assert removed.total_power == 40
    assert sum(removed.priorities) in range(len(removed))  # centred
    changed = vs.with_changes([val(1, 50)])
    assert changed.power_of(val(1, 1).address) == 50
    assert changed.priority_of(val(1, 1).address) - vs.priority_of(val(1, 1).address) == (
        changed.priority_of(val(3, 1).address) - vs.priority_of(val(3, 1).address)
    )  # kept, only shifted by the common centring
    # Removing the current proposer leaves a member as proposer(0).
    gone = vs.with_changes([Validator(vs.proposer(0), KEY, 0)])
    assert gone.proposer(0) in gone


def test_determinism_hash_and_encoding() -> None:
    members = [val(3, 7), val(1, 5), val(2, 9)]
    a = ValidatorSet.from_validators(members)
    b = ValidatorSet.from_validators(list(reversed(members)))
    assert a == b and a.hash() == b.hash()
    assert [v.address for v in a.validators] == sorted(v.address for v in members)
    assert a.advance().hash() == a.hash()  # priorities are not committed
    assert a.with_changes([val(1, 6)]).hash() != a.hash()
    assert ValidatorSet.decode(a.encode()) == a
    later = a.advance(17)
    assert ValidatorSet.decode(later.encode()) == later
    with pytest.raises(InvalidValidatorSet):
        ValidatorSet.decode(b"\x01\x02")
    assert a.power_of(b"nobody") == 0
    assert a.total_power == 21
