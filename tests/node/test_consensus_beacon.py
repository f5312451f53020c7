"""The random beacon in BFT blocks (``node.consensus_app`` + ``node.blockchain``).

Four nodes, each holding the consensus key of one of four genesis validators; validators 0-2
registered the tip of their onion 0 in genesis, validator 3 has no commitment (fallback form).
Each height is proposed by the node holding the key of the round's proposer, checked and
committed by every node. The onions (2^20 layers, ~2 s each) are built once per process
(``consensus_app.onion_for``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account import Account as EthAccount

from cybermiles.chain.block_codec import NetBlock
from cybermiles.chain.genesis import Genesis, parse_genesis
from cybermiles.chain.header import ZERO_HASH
from cybermiles.consensus.app import Divergence
from cybermiles.consensus.beacon import GENESIS_BEACON, next_beacon
from cybermiles.consensus.commit import Commit
from cybermiles.consensus.proposer import ValidatorSet
from cybermiles.consensus.signing import sign_vote
from cybermiles.consensus.types import Vote, VoteType
from cybermiles.consensus.votes import VoteSet
from cybermiles.crypto.address import to_checksum
from cybermiles.crypto.keccak import keccak256
from cybermiles.execution.evm_state import WorldStateAccountDB
from cybermiles.mempool import Mempool, MempoolConfig
from cybermiles.modules.addresses import STAKING
from cybermiles.modules.params import read_params
from cybermiles.modules.staking.beacon import beacon_for
from cybermiles.modules.staking.beacon_commitments import ONION_LENGTH
from cybermiles.modules.staking.power import elect_sets, power_table
from cybermiles.modules.staking.state import BeaconCommitment, StakingState
from cybermiles.node import consensus_app
from cybermiles.node.blockchain import Blockchain
from cybermiles.node.consensus_app import (
    MAX_PROPOSAL_ROUND,
    BeaconUnavailable,
    ChainConsensusApp,
    onion_for,
)
from cybermiles.node.keys import ValidatorKey
from cybermiles.node.node import HeadStateReader
from cybermiles.node.producer import pool_config
from cybermiles.state.world import WorldState

CHAIN_ID = 4343
CMT = 10**18
GENESIS_TIME = 1_000_000
OWNERS = [
    bytes.fromhex(EthAccount.from_key((i + 1).to_bytes(32, "big")).address[2:]) for i in range(4)
]
KEYS = [ValidatorKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
KEY_OF = dict(zip(OWNERS, KEYS, strict=True))
STAKES = [400_000, 300_000, 200_000, 100_000]
COMMITTED = (0, 1, 2)  # validator 3 never committed: its blocks take the fallback form
UNCOMMITTED = OWNERS[3]


def make_genesis(params: dict[str, str] | None = None) -> Genesis:
    validators = []
    for i, (owner, key, stake) in enumerate(zip(OWNERS, KEYS, STAKES, strict=True)):
        entry = {
            "address": to_checksum(owner),
            "pub_key": "0x" + key.pub_key.hex(),
            "max_amount": str(stake * CMT),
            "comp_rate": "0.2",
            "name": f"v{i}",
        }
        if i in COMMITTED:
            entry["beacon_commitment"] = "0x" + onion_for(key).tip.hex()
        validators.append(entry)
    return parse_genesis(
        {
            "chain_id": CHAIN_ID,
            "timestamp": GENESIS_TIME,
            "params": {"validator_size_threshold": "10000", **(params or {})},
            "alloc": {to_checksum(o): {"balance": str(10**6 * CMT)} for o in OWNERS},
            "validators": validators,
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = GENESIS_TIME + 1

    def __call__(self) -> float:
        return float(self.now)


@dataclass
class Node:
    path: Path
    genesis: Genesis
    clock: Clock
    key: ValidatorKey | None
    onion_index: int = 0
    chain: Blockchain = field(init=False)
    app: ChainConsensusApp = field(init=False)

    def __post_init__(self) -> None:
        self.open()

    def open(self) -> None:
        self.chain = Blockchain(self.path, self.genesis)
        pool = Mempool(pool_config(MempoolConfig(), self.chain.params), HeadStateReader(self.chain))
        self.app = ChainConsensusApp(
            self.chain,
            pool,
            chain_id=CHAIN_ID,
            clock=self.clock,
            validator_key=self.key,
            onion_index=self.onion_index,
        )

    def reopen(self) -> None:
        self.chain.close()
        self.open()

    def staking(self) -> StakingState:
        return StakingState(WorldStateAccountDB(self.chain.world))

    def record(self, owner: bytes) -> BeaconCommitment | None:
        return self.staking().beacon_commitment(owner)


def make_commit(vset: ValidatorSet, height: int, block_hash: bytes) -> Commit:
    votes = VoteSet(CHAIN_ID, height, 0, VoteType.PRECOMMIT, vset)
    for v in vset:
        vote = Vote(VoteType.PRECOMMIT, height, 0, block_hash, v.address)
        votes.add_vote(sign_vote(KEY_OF[v.address].private_key, CHAIN_ID, vote))
    return votes.make_commit()


class Net:
    """One node per validator key (node ``i`` holds ``KEYS[i]``)."""

    def __init__(self, root: Path, params: dict[str, str] | None = None) -> None:
        self.genesis = make_genesis(params)
        self.clock = Clock()
        self.root = root
        self.nodes = [Node(root / f"n{i}", self.genesis, self.clock, k) for i, k in enumerate(KEYS)]
        self.commits: dict[int, Commit] = {}

    @property
    def height(self) -> int:
        return self.nodes[0].app.height()

    def node_of(self, owner: bytes) -> Node:
        return self.nodes[OWNERS.index(owner)]

    def round_of(self, owner: bytes) -> int:
        """The first round of the next height whose proposer is ``owner``."""
        vset = self.nodes[0].app.validators(self.height + 1)
        return next(r for r in range(64) if vset.proposer(r) == owner)

    def propose(self, round: int = 0) -> tuple[bytes, bytes]:
        h = self.height + 1
        proposer = self.nodes[0].app.validators(h).proposer(round)
        self.clock.now += 1
        return self.node_of(proposer).app.propose(h, round, self.commits.get(h - 1))

    def finish(self, block_hash: bytes, data: bytes, nodes: Sequence[Node] | None = None) -> None:
        h = self.height + 1
        for node in nodes or self.nodes:
            assert node.app.check(h, data) == block_hash
        commit = make_commit(self.nodes[0].app.validators(h), h, block_hash)
        for node in nodes or self.nodes:
            node.app.commit(h, data, commit)
        self.commits[h] = commit

    def step(self, round: int = 0) -> NetBlock:
        block_hash, data = self.propose(round)
        self.finish(block_hash, data)
        return NetBlock.decode(data)

    def assert_agree(self) -> None:
        first = self.nodes[0].chain
        for node in self.nodes:
            assert node.chain.head_hash == first.head_hash
            assert node.chain.world.state_root() == node.chain.head.state_root
            assert node.chain.prepared is None

    def close(self) -> None:
        for node in self.nodes:
            node.chain.close()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    network = Net(tmp_path)
    try:
        yield network
    finally:
        network.close()


def prev_beacon(node: Node, height: int) -> bytes:
    if height == 1:
        return GENESIS_BEACON
    header = node.chain.blocks.header(height - 1)
    assert header is not None
    return header.mix_hash


def with_beacon(
    data: bytes, reveal: bytes | None = None, round: int | None = None, **header
) -> bytes:
    block = NetBlock.decode(data)
    return NetBlock(
        block.header.copy(**header) if header else block.header,
        block.raw_txs,
        block.last_commit,
        block.evidence,
        block.beacon_reveal if reveal is None else reveal,
        block.round if round is None else round,
    ).encode()


def untouched(node: Node, head_hash: bytes) -> None:
    assert node.chain.head_hash == head_hash
    assert node.chain.prepared is None
    assert node.chain.world.state_root() == node.chain.head.state_root
    assert WorldState(node.chain.db).state_root() == node.chain.head.state_root


# --------------------------------------------------------------------------- tests


def test_mix_hash_follows_the_reveal_chain(net: Net) -> None:
    a = net.nodes[0]
    steps = dict.fromkeys(OWNERS, 0)
    proposers = set()
    for h in range(1, 13):
        vset = a.app.validators(h)
        proposer = vset.proposer(0)
        before = a.record(proposer)
        block = net.step()
        header = block.header
        assert block.round == 0
        if proposer == UNCOMMITTED:
            assert block.beacon_reveal == b""
            assert header.mix_hash == keccak256(prev_beacon(a, h) + proposer + h.to_bytes(8, "big"))
            assert a.record(proposer) is None
        else:
            steps[proposer] += 1
            reveal = block.beacon_reveal
            assert before is not None and keccak256(reveal) == before.commitment
            assert reveal == onion_for(KEY_OF[proposer]).reveal(steps[proposer])
            assert header.mix_hash == keccak256(prev_beacon(a, h) + reveal)
            assert header.mix_hash == next_beacon(prev_beacon(a, h), reveal, proposer, h)
            # Executing the block consumed the reveal: the state root covers it.
            assert a.record(proposer) == BeaconCommitment(
                reveal, ONION_LENGTH - steps[proposer], b"", 0
            )
        proposers.add(proposer)
        net.assert_agree()
    assert proposers == set(OWNERS)  # every validator proposed, the uncommitted one too
    # The stored blocks carry the reveal and the round (served to syncing peers).
    for h in range(1, 13):
        data, _commit = a.app.block_and_commit(h) or (b"", None)
        block = NetBlock.decode(data)
        assert block.header.mix_hash == a.chain.blocks.header(h).mix_hash
        assert block.round == 0


def test_fallback_for_a_validator_without_commitment(net: Net) -> None:
    net.step()
    round = net.round_of(UNCOMMITTED)
    assert round > 0 or net.nodes[0].app.validators(2).proposer(0) == UNCOMMITTED
    h = net.height + 1
    prev = net.nodes[0].chain.head.mix_hash
    block_hash, data = net.propose(round)
    block = NetBlock.decode(data)
    assert block.round == round and block.beacon_reveal == b""
    assert block.header.mix_hash == next_beacon(prev, None, UNCOMMITTED, h)
    net.finish(block_hash, data)
    net.assert_agree()
    # Any node may build a fallback block (no secret is needed), even one without a key.
    other = net.nodes[0]
    assert other.app.beacon_reveal(h + 1, UNCOMMITTED) is None


def rounds(vset: ValidatorSet) -> tuple[int, int, int]:
    """Rounds of a committed proposer, of the uncommitted one and of another committed one."""
    committed = next(r for r in range(64) if vset.proposer(r) != UNCOMMITTED)
    fallback = next(r for r in range(64) if vset.proposer(r) == UNCOMMITTED)
    other = next(
        r for r in range(64) if vset.proposer(r) not in (UNCOMMITTED, vset.proposer(committed))
    )
    return committed, fallback, other


def bystander(net: Net, *busy: bytes) -> Node:
    return next(n for n, o in zip(net.nodes, OWNERS, strict=True) if o not in busy)


def test_invalid_beacons_are_rejected(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    net.step()
    a = net.nodes[0]
    h = net.height + 1
    vset = a.app.validators(h)
    committed_round, fallback_round, other_round = rounds(vset)
    proposer = vset.proposer(committed_round)
    b = bystander(net, proposer, UNCOMMITTED)  # nothing cached on b
    head = b.chain.head_hash
    block_hash, data = net.propose(committed_round)
    block = NetBlock.decode(data)
    assert len(block.beacon_reveal) == 32
    _fb_hash, fb_data = net.propose(fallback_round)
    fallback = NetBlock.decode(fb_data)
    assert fallback.beacon_reveal == b""
    cases = {
        "missing reveal": with_beacon(data, reveal=b""),
        "wrong reveal": with_beacon(data, reveal=b"\x07" * 32),
        "the commitment instead of its preimage": with_beacon(
            data, reveal=keccak256(block.beacon_reveal)
        ),
        "short reveal": with_beacon(data, reveal=block.beacon_reveal[:31]),
        "extra reveal": with_beacon(fb_data, reveal=b"\x07" * 32),
        "another proposer's reveal": with_beacon(fb_data, reveal=block.beacon_reveal),
        "wrong mixHash": with_beacon(data, mix_hash=b"\x42" * 32),
        "zero mixHash": with_beacon(fb_data, mix_hash=ZERO_HASH),
        "fallback form for a committed proposer": with_beacon(
            data, reveal=b"", mix_hash=next_beacon(prev_beacon(a, h), None, proposer, h)
        ),
        "round of another proposer": with_beacon(data, round=other_round),
        "fallback block claiming a committed round": with_beacon(fb_data, round=committed_round),
        "round out of range": with_beacon(data, round=MAX_PROPOSAL_ROUND + 1),
    }
    for name, bad in cases.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cybermiles.consensus_app"):
            assert b.app.check(h, bad) is None, name
        assert "rejected" in caplog.text, name
        untouched(b, head)
    # The genuine blocks still check; the committed one commits everywhere.
    assert b.app.check(h, fb_data) == fallback.hash
    net.finish(block_hash, data)
    net.assert_agree()


def test_commit_of_a_block_with_a_bad_beacon_diverges(net: Net) -> None:
    net.step()
    h = net.height + 1
    committed_round, _, _ = rounds(net.nodes[0].app.validators(h))
    proposer = net.nodes[0].app.validators(h).proposer(committed_round)
    _hash, data = net.propose(committed_round)
    # A node that never saw the block, and the proposer with its own block cached.
    for node in (bystander(net, proposer), net.node_of(proposer)):
        head = node.chain.head_hash
        for bad in (
            with_beacon(data, reveal=b"\x07" * 32),
            with_beacon(data, reveal=b""),
            with_beacon(data, mix_hash=b"\x42" * 32),
        ):
            commit = make_commit(node.app.validators(h), h, NetBlock.decode(bad).hash)
            with pytest.raises(Divergence, match=f"block {h}"):
                node.app.commit(h, bad, commit)
            untouched(node, head)


def test_the_backup_draw_uses_the_blocks_beacon(tmp_path: Path) -> None:
    # One validator, one backup drawn among the other three at the end of every even block.
    network = Net(tmp_path, {"max_vals": "1", "backup_vals": "1", "epoch_blocks": "2"})
    try:
        a = network.nodes[0]
        differs = 0
        for h in range(1, 17):
            network.step()
            if h % 2:
                continue
            backend = WorldStateAccountDB(a.chain.world)
            state = StakingState(backend)
            params = read_params(backend)
            powers = power_table(backend, params).candidates
            header = a.chain.head
            assert header.mix_hash != ZERO_HASH
            expected = elect_sets(powers, 1, 1, header.mix_hash)
            assert (state.validators(), state.backups()) == expected
            placeholder = elect_sets(powers, 1, 1, beacon_for(header.parent_hash))
            differs += placeholder != expected
        assert differs > 0  # the parent-hash placeholder would have drawn otherwise
        network.assert_agree()
    finally:
        network.close()


def test_restart_keeps_the_onion_step(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(6):
        net.step()
    owner = OWNERS[0]
    node = net.node_of(owner)
    record = node.record(owner)
    assert record is not None and record.reveals_left < ONION_LENGTH  # it revealed already
    done = ONION_LENGTH - record.reveals_left
    # Restart with the onion cache emptied: the onion is rebuilt from the key and the step
    # comes from the staking state.
    monkeypatch.setattr(consensus_app, "_onions", {})
    node.reopen()
    onion = node.app.onion()
    assert onion is not None and onion.tip == onion_for(KEYS[0]).tip
    block_hash, data = net.propose(net.round_of(owner))
    block = NetBlock.decode(data)
    assert block.beacon_reveal == onion.reveal(done + 1)
    assert keccak256(block.beacon_reveal) == record.commitment
    net.finish(block_hash, data)
    net.assert_agree()
    assert node.record(owner).reveals_left == record.reveals_left - 1


def test_an_independent_node_replays_the_chain(net: Net, tmp_path: Path) -> None:
    for _ in range(8):
        net.step()
    fresh = Node(tmp_path / "fresh", net.genesis, net.clock, None)  # no key: a full node
    try:
        for h in range(1, net.height + 1):
            data, commit = net.nodes[1].app.block_and_commit(h)
            assert fresh.app.check(h, data) == commit.block_hash
            fresh.app.commit(h, data, commit)
        assert fresh.chain.head_hash == net.nodes[0].chain.head_hash
        assert fresh.chain.head.state_root == net.nodes[0].chain.head.state_root
        for owner in OWNERS:
            assert fresh.record(owner) == net.nodes[0].record(owner)
    finally:
        fresh.chain.close()


def test_a_node_that_cannot_reveal_does_not_propose(
    net: Net, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = 1
    vset = net.nodes[0].app.validators(h)
    round = next(r for r in range(64) if vset.proposer(r) == OWNERS[0])
    # No key at all.
    keyless = Node(tmp_path / "keyless", net.genesis, net.clock, None)
    # The right key but another onion than the committed one (onion 1 instead of 0).
    with caplog.at_level(logging.WARNING, logger="cybermiles.consensus_app"):
        wrong = Node(tmp_path / "wrong", net.genesis, net.clock, KEYS[0], onion_index=1)
        assert wrong.app.onion() is not None
    assert "is not from onion 1" in caplog.text
    try:
        with pytest.raises(BeaconUnavailable, match="no validator key"):
            keyless.app.propose(h, round, None)
        with pytest.raises(BeaconUnavailable, match="does not open the live commitment"):
            wrong.app.propose(h, round, None)
        # Another validator's key.
        with pytest.raises(BeaconUnavailable, match="not the key of proposer"):
            net.nodes[1].app.propose(h, round, None)
        for node in (keyless, wrong):
            assert node.chain.prepared is None
    finally:
        keyless.chain.close()
        wrong.chain.close()
    # The right node proposes and everyone accepts.
    net.step(round)
    net.assert_agree()


def test_single_producer_blocks_keep_a_zero_mix_hash(tmp_path: Path) -> None:
    chain = Blockchain(tmp_path / "dev", make_genesis())
    try:
        before = StakingState(WorldStateAccountDB(chain.world)).beacon_commitment(OWNERS[0])
        built = chain.build_block([], timestamp=GENESIS_TIME + 1, coinbase=STAKING)
        assert built.header.mix_hash == ZERO_HASH
        after = StakingState(WorldStateAccountDB(chain.world)).beacon_commitment(OWNERS[0])
        assert after == before  # no reveal consumed
    finally:
        chain.close()
