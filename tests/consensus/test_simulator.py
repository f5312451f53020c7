"""The state machine in a simulated network: safety under faults, liveness after GST.

Every run is deterministic (one seed), so a failure prints the seed that reproduces it:
``Simulator(scenario_config(name, seed), seed).run()``.
"""

from __future__ import annotations

import random

import pytest
from simulator import (
    Byzantine,
    NetConfig,
    Partition,
    Simulator,
)

from cybermiles.consensus.actions import DuplicateVoteEvidence
from cybermiles.consensus.types import Step

CHAOS = Byzantine(
    equivocate_proposals=True, double_vote=True, vote_everything=True, invalid_proposals=False
)

# name -> (powers, byzantine nodes). Byzantine power is always < 1/3 of the total.
SCENARIOS: dict[str, tuple[tuple[int, ...], dict[int, Byzantine]]] = {
    "crashed": ((1, 1, 1, 1), {2: Byzantine(silent_from_ms=0)}),
    "equivocator": ((1, 1, 1, 1), {3: CHAOS}),
    "invalid-proposer": ((1, 1, 1, 1), {1: Byzantine(invalid_proposals=True, double_vote=True)}),
    "weighted": ((3, 2, 2, 1, 1), {1: CHAOS}),
    "seven": ((1,) * 7, {0: CHAOS, 4: Byzantine(silent_from_ms=300)}),
}


# Seeds per scenario (each run decides 3 heights): 200 for the 4-validator networks.
RUNS = {"crashed": 200, "equivocator": 200, "invalid-proposer": 200, "weighted": 100, "seven": 60}


def random_partitions(rng: random.Random, n: int, gst_ms: int) -> tuple[Partition, ...]:
    """One to six partition windows before GST (they may overlap), each a random two-way split."""
    out = []
    for _ in range(rng.randint(1, 6)):
        start = rng.randint(0, gst_ms - 30)
        end = rng.randint(start + 30, min(gst_ms, start + 1500))
        nodes = list(range(n))
        rng.shuffle(nodes)
        cut = rng.randint(1, n - 1)
        out.append(Partition(start, end, (frozenset(nodes[:cut]), frozenset(nodes[cut:]))))
    return tuple(out)


def scenario_config(name: str, seed: int, heights: int = 3) -> NetConfig:
    """A randomized but seed-determined faulty network for scenario ``name``."""
    powers, byzantine = SCENARIOS[name]
    rng = random.Random(f"{name}/{seed}")
    gst = rng.randint(500, 3000)
    return NetConfig(
        powers=powers,
        heights=heights,
        delay_min_ms=1,
        delay_max_ms=rng.randint(5, 80),
        reorder=rng.choice((0.0, 0.3)),
        loss=rng.choice((0.0, 0.05, 0.2, 0.5)),
        gst_ms=gst,
        partitions=random_partitions(rng, len(powers), gst),
        byzantine=byzantine,
    )


# Liveness bound. After the heal (GST, or the end of the last partition if later) there is no
# loss, delays are <= 80 ms and gossip runs every 50 ms, so each height needs a few short rounds
# (timeouts restart at round 0 per height). Every honest node must decide each height within
# HEIGHT_BOUND_MS of the later of the heal and the previous height's last decision. The worst
# seen over the seeded runs is about 1.3 s.
HEIGHT_BOUND_MS = 3_000


def check_run(name: str, seed: int) -> Simulator:
    config = scenario_config(name, seed)
    sim = Simulator(config, seed).run()
    context = f"scenario {name!r} seed {seed}"
    try:
        sim.assert_agreement()
        sim.assert_validity()
    except AssertionError as e:  # pragma: no cover - reported with its seed
        raise AssertionError(f"{context}: {e}") from e
    assert sim.done(), f"{context}: honest nodes did not all decide {config.heights} heights"
    previous = max([config.gst_ms, *(p.end_ms for p in config.partitions)])
    for height in range(1, config.heights + 1):
        last = max(r.time_ms for r in sim.decisions[height].values())
        assert last - previous <= HEIGHT_BOUND_MS, f"{context}: height {height} took too long"
        previous = max(previous, last)
    return sim


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_safety_and_liveness_over_seeded_runs(name: str) -> None:
    """Never two decisions at one height among honest nodes; all decide soon after GST."""
    runs = RUNS[name]
    for seed in range(runs):
        check_run(name, seed)


def test_all_honest_network_decides_every_height_in_round_zero() -> None:
    sim = Simulator(NetConfig(powers=(1, 1, 1, 1), heights=5), seed=1).run()
    assert sim.done()
    sim.assert_agreement()
    for height in range(1, 6):
        records = sim.decisions[height]
        assert sorted(records) == [0, 1, 2, 3]
        assert {r.round for r in records.values()} == {0}


def test_runs_are_deterministic() -> None:
    a = Simulator(scenario_config("equivocator", 7), 7).run()
    b = Simulator(scenario_config("equivocator", 7), 7).run()
    assert a.delivered == b.delivered and a.now == b.now
    assert {
        h: {i: (r.time_ms, r.block_hash) for i, r in d.items()} for h, d in a.decisions.items()
    } == {h: {i: (r.time_ms, r.block_hash) for i, r in d.items()} for h, d in b.decisions.items()}


def test_crashed_validator_costs_rounds_not_progress() -> None:
    """f crashed: the rounds it proposes time out, the others still decide every height."""
    config = NetConfig(powers=(1, 1, 1, 1), heights=8, byzantine={0: Byzantine(silent_from_ms=0)})
    sim = Simulator(config, seed=3).run()
    assert sim.done()
    sim.assert_agreement()
    rounds = [sim.decisions[h][1].round for h in range(1, 9)]
    assert max(rounds) >= 1  # some height had validator 0 as its round-0 proposer
    assert 0 not in sim.decisions.get(1, {})


def test_conflicting_proposals_with_partition() -> None:
    """CometBFT ConflictingProposalsWithPartition: a byzantine proposer feeds two halves different
    blocks while they cannot talk; after the partition heals everyone commits the same block."""
    groups = (frozenset({0, 1}), frozenset({2, 3}))
    config = NetConfig(
        powers=(1, 1, 1, 1),
        heights=3,
        gst_ms=1500,
        partitions=(Partition(0, 1500, groups),),
        byzantine={0: Byzantine(equivocate_proposals=True, double_vote=True)},
    )
    for seed in range(10):
        sim = Simulator(config, seed).run()
        sim.assert_agreement()
        assert sim.done()
        assert all(r.time_ms >= 1500 for r in sim.decisions[1].values())


def test_double_voter_is_reported_as_evidence() -> None:
    config = NetConfig(powers=(1, 1, 1, 1), heights=3, byzantine={2: Byzantine(double_vote=True)})
    sim = Simulator(config, seed=5).run()
    assert sim.done()
    sim.assert_agreement()
    for node in sim.honest:
        assert node.evidence, f"node {node.index} saw no evidence"
        for ev in node.evidence:
            assert isinstance(ev, DuplicateVoteEvidence)
            a, b = ev.vote_a, ev.vote_b
            assert a.validator == b.validator == sim.nodes[2].address
            assert (a.type, a.height, a.round) == (b.type, b.height, b.round)
            assert a.block_hash != b.block_hash


def test_lagging_node_catches_up_through_commits() -> None:
    """A node cut off for several heights learns the commits by gossip after the heal."""
    config = NetConfig(
        powers=(1, 1, 1, 1),
        heights=6,
        gst_ms=3000,
        partitions=(Partition(0, 3000, (frozenset({0, 1, 2}), frozenset({3}))),),
    )
    sim = Simulator(config, seed=11).run()
    assert sim.done()
    sim.assert_agreement()
    assert sim.decisions[4][0].time_ms < 3000  # the majority went ahead
    assert all(sim.decisions[h][3].time_ms >= 3000 for h in range(1, 7))


def test_more_than_a_third_silent_halts_but_stays_safe() -> None:
    config = NetConfig(
        powers=(1, 1, 1, 1),
        heights=2,
        max_time_ms=5_000,
        byzantine={0: Byzantine(silent_from_ms=0), 1: Byzantine(silent_from_ms=0)},
    )
    sim = Simulator(config, seed=2).run()
    assert not sim.decisions
    # Only 2 of 4 prevotes: no 2f+1 of anything, so no prevote timeout and no new round.
    assert all((n.cs.round, n.cs.step) == (0, Step.PREVOTE) for n in sim.honest)
