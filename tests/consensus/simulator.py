"""A deterministic network of ``ConsensusState`` validators on a virtual clock.

Everything that happens is an entry of one event queue ordered by ``(time_ms, seq)``: message
deliveries, timeouts, height starts, gossip ticks. The only randomness is one seeded
``random.Random``, so a seed replays the same run exactly.

The network
    Each message gets a delay drawn from ``[delay_min_ms, delay_max_ms]`` (so messages are
    reordered), optionally an extra reordering delay, and before GST it is lost with probability
    ``loss``. A ``Partition`` cuts every link between its groups for a time window (checked when a
    message is sent and when it arrives). After ``gst_ms`` there is no loss and no extra delay.

Each node's "reactor" (``SimNode``)
    feeds events to its state machine and carries out the actions: broadcasts go to every peer,
    timeouts are queued, ``RequestValue`` is answered at once, ``Decide`` is recorded and the next
    height starts ``commit_ms`` later. Honest nodes also gossip like CometBFT's reactor: every
    ``gossip_ms`` they send a ``Status`` (height and the keys of the messages they have for it)
    and a peer answers with what is missing: the messages of that height, or the commit of a
    height the peer is behind on. This is what makes lost messages and partitions recoverable.

Byzantine behaviours (``Byzantine``)
    ``silent_from_ms``: crashed from that time on (sends and receives nothing).
    ``equivocate_proposals``: as proposer, sends different proposals to different peers.
    ``double_vote``: each vote is sent together with a conflicting one (some peers get one, some
    the other, some both).
    ``vote_everything``: prevotes and precommits every value it sees proposed, to random peers.
    ``invalid_proposals``: as proposer, proposes a block honest nodes find invalid.
    A byzantine node runs an ordinary state machine underneath, so it also takes part honestly.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

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
from cybermiles.consensus.timeouts import TimeoutConfig
from cybermiles.consensus.types import Proposal, Validator, Vote, VoteType

# Timeouts that fit the simulated delays (a few ms to tens of ms) and grow fast enough that the
# network catches up after GST within a few rounds.
SIM_TIMEOUTS = TimeoutConfig(
    propose_ms=120,
    propose_delta_ms=40,
    prevote_ms=60,
    prevote_delta_ms=40,
    precommit_ms=60,
    precommit_delta_ms=40,
    commit_ms=20,
)


def address(i: int) -> bytes:
    """The test address of validator ``i``: 20 bytes, sorting like ``i``."""
    return bytes([0] * 19 + [i + 1])


def block_value(height: int, round: int, proposer: bytes, variant: int = 0) -> bytes:
    """The block hash a proposer builds for (height, round): distinct per variant."""
    data = b"block" + height.to_bytes(8, "big") + round.to_bytes(4, "big") + proposer
    return hashlib.sha256(data + bytes([variant])).digest()


class StaticValidators:
    """A fixed validator set; the proposer rotates round-robin by (height + round)."""

    def __init__(self, validators: Sequence[Validator], height: int = 0) -> None:
        self._power = {v.address: v.power for v in validators}
        self._order = sorted(self._power)
        self._height = height
        self._total = sum(self._power.values())

    def power_of(self, address: bytes) -> int:
        return self._power.get(address, 0)

    @property
    def total_power(self) -> int:
        return self._total

    def proposer(self, round: int) -> bytes:
        return self._order[(self._height + round) % len(self._order)]


def make_validators(powers: Sequence[int]) -> list[Validator]:
    return [Validator(address(i), bytes(32), p) for i, p in enumerate(powers)]


@dataclass(frozen=True, slots=True)
class Partition:
    """From ``start_ms`` to ``end_ms`` nodes in different groups cannot talk.

    Nodes listed in no group are cut off from everyone.
    """

    start_ms: int
    end_ms: int
    groups: tuple[frozenset[int], ...]

    def blocks(self, now: int, a: int, b: int) -> bool:
        if not self.start_ms <= now < self.end_ms:
            return False
        return not any(a in g and b in g for g in self.groups)


@dataclass(frozen=True, slots=True)
class Byzantine:
    silent_from_ms: int | None = None
    equivocate_proposals: bool = False
    double_vote: bool = False
    vote_everything: bool = False
    invalid_proposals: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    """Gossip: "I am at ``height`` and have these messages of it"."""

    height: int
    have: frozenset[tuple]


Message = Proposal | Vote | Status


def message_key(m: Proposal | Vote) -> tuple:
    if isinstance(m, Proposal):
        return ("P", m.round, m.block_hash, m.pol_round)
    return ("V", int(m.type), m.round, m.validator, m.block_hash)


@dataclass
class NetConfig:
    powers: Sequence[int] = (1, 1, 1, 1)
    heights: int = 3
    delay_min_ms: int = 1
    delay_max_ms: int = 20
    reorder: float = 0.0  # probability of an extra delay up to 3 * delay_max_ms (before GST)
    loss: float = 0.0  # before GST
    gst_ms: int = 0
    partitions: Sequence[Partition] = ()
    byzantine: dict[int, Byzantine] = field(default_factory=dict)
    gossip_ms: int = 50
    timeouts: TimeoutConfig = SIM_TIMEOUTS
    max_time_ms: int = 120_000


@dataclass
class DecisionRecord:
    time_ms: int
    round: int
    block_hash: bytes


class SimNode:
    """One node: its state machine plus a minimal reactor."""

    def __init__(self, sim: Simulator, index: int, byzantine: Byzantine | None) -> None:
        self.sim = sim
        self.index = index
        self.address = address(index)
        self.byzantine = byzantine
        self.cs = ConsensusState(self.address, 1, sim.validators_for, sim.config.timeouts)
        self.store: dict[int, dict[tuple, Proposal | Vote]] = {}
        self.certs: dict[int, tuple[Proposal | Vote, ...]] = {}
        self.evidence: list[DuplicateVoteEvidence] = []

    @property
    def honest(self) -> bool:
        return self.byzantine is None

    def crashed(self, now: int) -> bool:
        b = self.byzantine
        return b is not None and b.silent_from_ms is not None and now >= b.silent_from_ms

    # -------------------------------------------------------------- inputs

    def receive(self, sender: int, message: Message) -> None:
        if isinstance(message, Status):
            self._answer_status(sender, message)
            return
        if message.height > self.cs.height + 1:
            return  # the state machine drops it too; peers resend it when we get there
        self.store.setdefault(message.height, {})[message_key(message)] = message
        if isinstance(message, Proposal):
            valid = message.block_hash not in self.sim.invalid_values
            self.run(ProposalEvent(message, valid))
            if self.byzantine is not None and self.byzantine.vote_everything:
                self._vote_for(message)
        else:
            self.run(VoteEvent(message))

    def run(self, event) -> None:
        for action in self.cs.handle(event):
            self._do(action)

    # -------------------------------------------------------------- actions

    def _do(self, action) -> None:
        sim = self.sim
        if isinstance(action, BroadcastProposal):
            self._remember(action.proposal)
            self._broadcast_proposal(action.proposal)
        elif isinstance(action, BroadcastVote):
            self._remember(action.vote)
            self._broadcast_vote(action.vote)
        elif isinstance(action, ScheduleTimeout):
            event = TimeoutEvent(action.height, action.round, action.step)
            sim.schedule(action.duration_ms, self.index, ("event", event))
        elif isinstance(action, RequestValue):
            value = block_value(action.height, action.round, self.address)
            sim.schedule(0, self.index, ("event", ValueEvent(action.height, action.round, value)))
        elif isinstance(action, Decide):
            self.certs[action.height] = (action.proposal, *action.precommits)
            sim.record_decision(self.index, action)
            if action.height < sim.config.heights:
                start = StartHeight(action.height + 1)
                sim.schedule(sim.config.timeouts.commit_ms, self.index, ("event", start))
        elif isinstance(action, DuplicateVoteEvidence):
            self.evidence.append(action)
        else:  # pragma: no cover
            raise AssertionError(action)

    def _remember(self, m: Proposal | Vote) -> None:
        self.store.setdefault(m.height, {})[message_key(m)] = m

    def _peers(self) -> list[int]:
        return [j for j in range(len(self.sim.nodes)) if j != self.index]

    def _broadcast_proposal(self, p: Proposal) -> None:
        b = self.byzantine
        if b is not None and b.invalid_proposals:
            bad = block_value(p.height, p.round, self.address, 3)
            self.sim.invalid_values.add(bad)
            p = Proposal(p.height, p.round, bad, p.pol_round, p.proposer)
        if b is None or not b.equivocate_proposals:
            for j in self._peers():
                self.sim.send(self.index, j, p)
            return
        alt = Proposal(
            p.height, p.round, block_value(p.height, p.round, self.address, 1), -1, p.proposer
        )
        for j in self._peers():
            self.sim.send(self.index, j, p if j % 2 == 0 else alt)

    def _broadcast_vote(self, v: Vote) -> None:
        b = self.byzantine
        if b is None or not b.double_vote:
            for j in self._peers():
                self.sim.send(self.index, j, v)
            return
        other = block_value(v.height, v.round, self.address, 2) if v.block_hash is None else None
        alt = Vote(v.type, v.height, v.round, other, v.validator)
        rng = self.sim.rng
        for j in self._peers():
            choice = rng.randrange(3)
            for m in ((v,), (alt,), (alt, v))[choice]:
                self.sim.send(self.index, j, m)

    def _vote_for(self, p: Proposal) -> None:
        """``vote_everything``: prevote and precommit ``p``'s value to a random half of peers."""
        rng = self.sim.rng
        for t in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            vote = Vote(t, p.height, p.round, p.block_hash, self.address)
            for j in self._peers():
                if rng.randrange(2):
                    self.sim.send(self.index, j, vote)

    # -------------------------------------------------------------- gossip

    def gossip(self) -> None:
        if not self.honest:
            return
        h = self.cs.height
        have = frozenset(self.store.get(h, {}))
        for j in self._peers():
            self.sim.send(self.index, j, Status(h, have))

    def _answer_status(self, sender: int, status: Status) -> None:
        if not self.honest:
            return
        if status.height < self.cs.height or self.cs.decision is not None:
            wanted: Sequence[Proposal | Vote] = self.certs.get(status.height, ())
        else:
            wanted = ()
        if status.height == self.cs.height:
            wanted = [*wanted, *self.store.get(status.height, {}).values()]
        for m in wanted:
            if message_key(m) not in status.have:
                self.sim.send(self.index, sender, m)


class Simulator:
    def __init__(self, config: NetConfig, seed: int) -> None:
        self.config = config
        self.rng = random.Random(seed)
        self.now = 0
        self._seq = 0
        self._queue: list[tuple[int, int, int, tuple]] = []
        self.validator_list = make_validators(config.powers)
        self.invalid_values: set[bytes] = set()
        self.decisions: dict[int, dict[int, DecisionRecord]] = {}  # height -> node -> record
        self.delivered = 0
        self.nodes = [SimNode(self, i, config.byzantine.get(i)) for i in range(len(config.powers))]

    def validators_for(self, height: int) -> StaticValidators:
        return StaticValidators(self.validator_list, height)

    @property
    def honest(self) -> list[SimNode]:
        return [n for n in self.nodes if n.honest]

    # -------------------------------------------------------------- queue

    def schedule(self, delay_ms: int, node: int, payload: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now + delay_ms, self._seq, node, payload))

    def _blocked(self, a: int, b: int, now: int) -> bool:
        return any(p.blocks(now, a, b) for p in self.config.partitions)

    def send(self, src: int, dst: int, message: Message) -> None:
        c = self.config
        if self.nodes[src].crashed(self.now) or self._blocked(src, dst, self.now):
            return
        before_gst = self.now < c.gst_ms
        if before_gst and c.loss and self.rng.random() < c.loss:
            return
        delay = self.rng.randint(c.delay_min_ms, c.delay_max_ms)
        if before_gst and c.reorder and self.rng.random() < c.reorder:
            delay += self.rng.randint(0, 3 * c.delay_max_ms)
        self.schedule(delay, dst, ("msg", src, message))

    def record_decision(self, node: int, d: Decide) -> None:
        self.decisions.setdefault(d.height, {})[node] = DecisionRecord(
            self.now, d.round, d.block_hash
        )

    # -------------------------------------------------------------- running

    def done(self) -> bool:
        last = self.decisions.get(self.config.heights, {})
        return all(n.index in last for n in self.honest)

    def run(self) -> Simulator:
        c = self.config
        for node in self.nodes:
            self.schedule(0, node.index, ("event", StartHeight(1)))
            self.schedule(self.rng.randint(1, c.gossip_ms), node.index, ("gossip",))
        while self._queue and not self.done():
            time, _, index, payload = heapq.heappop(self._queue)
            if time > c.max_time_ms:
                break
            self.now = time
            node = self.nodes[index]
            if node.crashed(time):
                continue
            kind = payload[0]
            if kind == "msg":
                if self._blocked(payload[1], index, time):
                    continue
                self.delivered += 1
                node.receive(payload[1], payload[2])
            elif kind == "event":
                node.run(payload[1])
            else:
                node.gossip()
                self.schedule(c.gossip_ms, index, ("gossip",))
        return self

    # -------------------------------------------------------------- checks

    def assert_agreement(self) -> None:
        """No two honest nodes decided different values at one height."""
        honest = {n.index for n in self.honest}
        for height, by_node in self.decisions.items():
            values = {r.block_hash for i, r in by_node.items() if i in honest}
            assert len(values) <= 1, f"height {height}: honest nodes decided {len(values)} values"

    def assert_validity(self) -> None:
        """Every honest decision is a valid block (never one marked invalid)."""
        honest = {n.index for n in self.honest}
        for by_node in self.decisions.values():
            for i, r in by_node.items():
                if i in honest:
                    assert r.block_hash not in self.invalid_values
