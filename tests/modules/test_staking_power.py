"""Voting power (minimum, 12% cap, inactive/jailed) and the election with its weighted draw."""

from __future__ import annotations

import math
from fractions import Fraction

from test_staking_support import CMT, Chain, account

from cybermiles.crypto.keccak import keccak256
from cybermiles.modules.framework.block import DoubleSign
from cybermiles.modules.staking import power_table
from cybermiles.modules.staking.beacon import beacon_for
from cybermiles.modules.staking.power import (
    delegation_power,
    draw_backups,
    elect_sets,
    top_validators,
)

A, B, D1 = account(1), account(2), account(11)


def spread(chain: Chain, n: int, self_stake: int) -> list[bytes]:
    """``n`` candidates with self-stake ``self_stake`` each (max amount 10x that)."""
    owners = [account(100 + i) for i in range(n)]
    for owner in owners:
        chain.declare(owner, 10 * self_stake)
    return owners


# -- power
def test_a_delegation_below_the_minimum_has_no_power() -> None:
    chain = Chain()
    minimum = chain.params.min_staking_amount
    spread(chain, 10, 100 * CMT)  # A stays well under 12%
    chain.declare(A, 100 * CMT)
    chain.delegate(D1, A, minimum - 1)
    table = power_table(chain.state, chain.params)
    assert D1 not in table.delegations[A]
    assert table.candidates[A] == 10 * CMT  # its self-stake only
    chain.delegate(D1, A, 1)
    assert power_table(chain.state, chain.params).delegations[A][D1] == minimum


def test_the_12_percent_cap() -> None:
    chain = Chain()
    others = spread(chain, 10, 100 * CMT)  # 10 × 100 CMT
    chain.declare(A, 1500 * CMT)  # self-stake 150
    chain.delegate(D1, A, 50 * CMT)  # A: 200 of T = 1200, 16.7% > 12%
    table = power_table(chain.state, chain.params)
    total, shares = 1200 * CMT, 200 * CMT
    assert shares * 10_000 > 1200 * total
    assert table.delegations[A] == {
        A: 150 * CMT * 1200 * total // (10_000 * shares),
        D1: 50 * CMT * 1200 * total // (10_000 * shares),
    }
    assert table.delegations[A] == {A: 108 * CMT, D1: 36 * CMT}  # the same, by hand
    assert table.candidates[A] == 144 * CMT
    for owner in others:  # 100 of 1200 = 8.3%: uncapped
        assert table.candidates[owner] == 100 * CMT
    assert table.total == 144 * CMT + 1000 * CMT


def test_exactly_12_percent_is_not_capped() -> None:
    params = Chain().params
    assert delegation_power(120, 120, 1000, params.replace(min_staking_amount=0)) == 120
    assert delegation_power(121, 121, 1001, params.replace(min_staking_amount=0)) == (
        121 * 1200 * 1001 // (10_000 * 121)
    )


def test_inactive_and_jailed_candidates_have_no_power_and_do_not_count_in_the_total() -> None:
    chain = Chain()
    owners = spread(chain, 10, 100 * CMT)
    chain.call(owners[0], "deactivateCandidacy")
    chain.end_block(evidence=(DoubleSign(owners[1], chain.number),), elect=False)
    table = power_table(chain.state, chain.params)
    assert owners[0] not in table.candidates and owners[1] not in table.candidates
    # T is the 8 remaining: 100 of 800 = 12.5% > 12%, so every one is capped
    total = 8 * 100 * CMT
    assert table.candidates[owners[2]] == 100 * CMT * 1200 * total // (10_000 * 100 * CMT)


# -- election
def test_top_validators_by_power_ties_to_the_lower_address() -> None:
    powers = {account(5): 10, account(3): 20, account(4): 20, account(1): 5, account(2): 0}
    assert top_validators(powers, 3) == [account(3), account(4), account(5)]
    assert top_validators(powers, 10) == [account(3), account(4), account(5), account(1)]


def test_backup_draw_follows_the_rule() -> None:
    x, y, z = account(1), account(2), account(3)
    beacon = beacon_for(b"\x42" * 32)
    assert beacon == keccak256(b"cybermiles/beacon" + b"\x42" * 32)
    # draw 0 over x:[0,1) y:[1,4); draw 1 over what remains
    r0 = int.from_bytes(keccak256(beacon + (0).to_bytes(32, "big")), "big") % 4
    first = x if r0 < 1 else y
    assert draw_backups({y: 3, x: 1, z: 0}, 2, beacon) == [first, y if first == x else x]
    validators, backups = elect_sets({z: 9, y: 3, x: 1}, 1, 5, beacon)
    assert validators == [z] and sorted(backups) == [x, y] and backups[0] == first


def test_election_is_deterministic_given_the_beacon() -> None:
    chain = Chain()
    owners = spread(chain, 8, 100 * CMT)
    chain.delegate(D1, owners[5], 50 * CMT)
    chain.elect(b"\x01" * 32)
    first = (chain.staking.validators(), chain.staking.backups())
    assert first[0][0] == owners[5] and len(first[0]) == 3 and len(first[1]) == 2
    assert not set(first[0]) & set(first[1])
    chain.elect(b"\x02" * 32)
    chain.elect(b"\x01" * 32)
    assert (chain.staking.validators(), chain.staking.backups()) == first


def _binomial_ok(count: int, n: int, p: Fraction) -> bool:
    """``count`` within 4.5 standard deviations of ``n × p`` (false alarm rate < 1e-5)."""
    mean = n * p
    sigma = math.sqrt(n * p * (1 - p))
    return abs(count - mean) <= 4.5 * sigma


def _inclusion(powers: dict[bytes, int], draws: int) -> dict[bytes, Fraction]:
    """Exact probability that each candidate is among ``draws`` weighted draws w/o replacement."""
    out = {a: Fraction(0) for a in powers}

    def walk(remaining: dict[bytes, int], left: int, p: Fraction) -> None:
        if left == 0 or not remaining:
            return
        total = sum(remaining.values())
        for a, w in remaining.items():
            q = p * Fraction(w, total)
            out[a] += q
            walk({b: v for b, v in remaining.items() if b != a}, left - 1, q)

    walk(dict(powers), draws, Fraction(1))
    return out


def test_single_backup_draw_frequency_is_proportional_to_power() -> None:
    powers = {account(i): w for i, w in enumerate((1, 2, 3, 4, 10), start=1)}
    n = 6000
    counts = dict.fromkeys(powers, 0)
    for i in range(n):
        (drawn,) = draw_backups(powers, 1, keccak256(i.to_bytes(8, "big")))
        counts[drawn] += 1
    total = sum(powers.values())
    for candidate, weight in powers.items():
        assert _binomial_ok(counts[candidate], n, Fraction(weight, total)), (weight, counts)


def test_several_backup_draws_match_the_exact_inclusion_probabilities() -> None:
    powers = {account(i): w for i, w in enumerate((1, 2, 3, 4, 10), start=1)}
    n = 4000
    counts = dict.fromkeys(powers, 0)
    for i in range(n):
        for drawn in draw_backups(powers, 3, keccak256(b"multi" + i.to_bytes(8, "big"))):
            counts[drawn] += 1
    for candidate, p in _inclusion(powers, 3).items():
        assert _binomial_ok(counts[candidate], n, p), (powers[candidate], counts)


def test_epoch_elections_pick_backups_in_proportion_to_power() -> None:
    """Through the state: validators fixed, backups (one per epoch) ∝ power of the rest."""
    chain = Chain()
    chain.set_params(chain.params.replace(max_vals=2, backup_vals=1))
    strong = spread(chain, 2, 1000 * CMT)
    weak = [account(200 + i) for i in range(3)]
    for owner, stake in zip(weak, (100 * CMT, 200 * CMT, 300 * CMT), strict=True):
        chain.declare(owner, 10 * stake)
    table = power_table(chain.state, chain.params)
    rest = {a: table.candidates[a] for a in weak}
    n = 600
    counts = dict.fromkeys(weak, 0)
    for i in range(n):
        chain.elect(keccak256(i.to_bytes(8, "big")))
        assert chain.staking.validators() == strong
        (backup,) = chain.staking.backups()
        counts[backup] += 1
    for owner in weak:
        assert _binomial_ok(counts[owner], n, Fraction(rest[owner], sum(rest.values()))), counts
