"""The chain side of BFT consensus (``node.consensus_app``) with real chains and signed commits.

Two (or three) independent nodes share a genesis with four validators whose Ed25519 keys the
test holds; one proposes, every node checks and commits with a commit signed by the keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_abi import encode as abi_encode
from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector

from cybermiles.chain.block_codec import (
    MalformedBlock,
    NetBlock,
    decode_consensus_data,
    encode_consensus_data,
)
from cybermiles.chain.genesis import Genesis, parse_genesis
from cybermiles.chain.transactions import Transaction, decode_transaction
from cybermiles.consensus.app import ConsensusApp, Divergence
from cybermiles.consensus.beacon import GENESIS_BEACON, next_beacon
from cybermiles.consensus.commit import Commit
from cybermiles.consensus.proposer import ValidatorSet
from cybermiles.consensus.signing import sign_vote
from cybermiles.consensus.types import Vote, VoteType
from cybermiles.consensus.votes import DuplicateVoteEvidence, VoteSet
from cybermiles.crypto import ed25519
from cybermiles.crypto.address import to_checksum
from cybermiles.crypto.keccak import keccak256
from cybermiles.execution.evm_state import WorldStateAccountDB
from cybermiles.mempool import Mempool, MempoolConfig
from cybermiles.modules.addresses import STAKING
from cybermiles.modules.staking.state import StakingState
from cybermiles.node.blockchain import Blockchain
from cybermiles.node.consensus_app import (
    POWER_UNIT,
    ChainConsensusApp,
    consensus_power,
)
from cybermiles.node.node import HeadStateReader
from cybermiles.node.producer import pool_config
from cybermiles.state.world import WorldState

CHAIN_ID = 4343
CMT = 10**18
GWEI = 10**9
GENESIS_TIME = 1_000_000


def eth_key(index: int) -> LocalAccount:
    return EthAccount.from_key((index + 1).to_bytes(32, "big"))


def address_of(account: LocalAccount) -> bytes:
    return bytes.fromhex(account.address[2:])


OWNERS = [eth_key(i) for i in range(4)]
USERS = [eth_key(10 + i) for i in range(3)]
CONSENSUS_KEYS = [ed25519.private_key_from_seed(bytes([i + 1]) * 32) for i in range(4)]
KEY_OF = {address_of(o): k for o, k in zip(OWNERS, CONSENSUS_KEYS, strict=True)}
STAKES = [400_000, 300_000, 200_000, 100_000]  # CMT, max amounts (self-stake 10% of it)


def make_genesis() -> Genesis:
    return parse_genesis(
        {
            "chain_id": CHAIN_ID,
            "timestamp": GENESIS_TIME,
            "params": {"max_slash_blocks": "50", "validator_size_threshold": "10000"},
            "alloc": {
                to_checksum(address_of(a)): {"balance": str(10**7 * CMT)} for a in OWNERS + USERS
            },
            "validators": [
                {
                    "address": to_checksum(address_of(owner)),
                    "pub_key": "0x" + ed25519.public_key_bytes(key).hex(),
                    "max_amount": str(stake * CMT),
                    "comp_rate": "0.2",
                    "name": f"v{i}",
                }
                for i, (owner, key, stake) in enumerate(
                    zip(OWNERS, CONSENSUS_KEYS, STAKES, strict=True)
                )
            ],
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
    chain: Blockchain = field(init=False)
    pool: Mempool = field(init=False)
    app: ChainConsensusApp = field(init=False)

    def __post_init__(self) -> None:
        self.open()

    def open(self) -> None:
        self.chain = Blockchain(self.path, self.genesis)
        self.pool = Mempool(
            pool_config(MempoolConfig(), self.chain.params), HeadStateReader(self.chain)
        )
        self.app = ChainConsensusApp(self.chain, self.pool, chain_id=CHAIN_ID, clock=self.clock)

    def reopen(self) -> None:
        self.chain.close()
        self.open()

    def staking(self) -> StakingState:
        return StakingState(WorldStateAccountDB(self.chain.world))

    def nonce(self, address: bytes) -> int:
        with self.chain.state_at() as view:
            return view.get_account_or_empty(address).nonce


def make_commit(
    vset: ValidatorSet, height: int, block_hash: bytes, signers: Sequence[bytes] | None = None
) -> Commit:
    votes = VoteSet(CHAIN_ID, height, 0, VoteType.PRECOMMIT, vset)
    for address in sorted(signers if signers is not None else [v.address for v in vset]):
        vote = Vote(VoteType.PRECOMMIT, height, 0, block_hash, address)
        votes.add_vote(sign_vote(KEY_OF[address], CHAIN_ID, vote))
    return votes.make_commit()


def transfer(node: Node, sender: LocalAccount, to: bytes, value: int, nonce: int) -> Transaction:
    raw = sender.sign_transaction(
        {
            "type": 2,
            "chainId": CHAIN_ID,
            "nonce": nonce,
            "gas": 21_000,
            "maxFeePerGas": GWEI,
            "maxPriorityFeePerGas": GWEI,
            "to": to_checksum(to),
            "value": value,
        }
    ).raw_transaction
    return decode_transaction(bytes(raw), CHAIN_ID)


def staking_call(sender: LocalAccount, nonce: int, signature: str, args: list[Any], value: int):
    types = signature[signature.index("(") + 1 : -1].split(",") if "()" not in signature else []
    data = function_signature_to_4byte_selector(signature) + abi_encode(types, args)
    raw = sender.sign_transaction(
        {
            "type": 2,
            "chainId": CHAIN_ID,
            "nonce": nonce,
            "gas": 1_000_000,
            "maxFeePerGas": GWEI,
            "maxPriorityFeePerGas": GWEI,
            "to": to_checksum(STAKING),
            "value": value,
            "data": data,
        }
    ).raw_transaction
    return decode_transaction(bytes(raw), CHAIN_ID)


class Net:
    """Nodes sharing a genesis; ``step`` runs one height (propose, check, commit)."""

    def __init__(self, root: Path, count: int = 2) -> None:
        self.genesis = make_genesis()
        self.clock = Clock()
        self.root = root
        self.nodes = [Node(root / f"n{i}", self.genesis, self.clock) for i in range(count)]
        self.commits: dict[int, Commit] = {}

    def add_node(self, name: str) -> Node:
        node = Node(self.root / name, self.genesis, self.clock)
        self.nodes.append(node)
        return node

    @property
    def height(self) -> int:
        return self.nodes[0].app.height()

    def propose(self, proposer: int = 0, txs: Sequence[Transaction] = ()) -> tuple[bytes, bytes]:
        node = self.nodes[proposer]
        for tx in txs:
            node.pool.add(tx)
        h = node.app.height() + 1
        self.clock.now += 1
        return node.app.propose(h, 0, self.commits.get(h - 1))

    def finish(
        self, block_hash: bytes, data: bytes, signers: Sequence[bytes] | None = None
    ) -> Commit:
        h = self.height + 1
        for node in self.nodes:
            assert node.app.check(h, data) == block_hash
        commit = make_commit(self.nodes[0].app.validators(h), h, block_hash, signers)
        for node in self.nodes:
            node.app.commit(h, data, commit)
        self.commits[h] = commit
        return commit

    def step(
        self,
        proposer: int = 0,
        txs: Sequence[Transaction] = (),
        signers: Sequence[bytes] | None = None,
    ) -> bytes:
        block_hash, data = self.propose(proposer, txs)
        self.finish(block_hash, data, signers)
        return block_hash

    def assert_agree(self) -> None:
        first = self.nodes[0].chain
        for node in self.nodes[1:]:
            assert node.chain.head_hash == first.head_hash
            assert node.chain.head.state_root == first.head.state_root
        for node in self.nodes:
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


def owner(i: int) -> bytes:
    return address_of(OWNERS[i])


def user_txs(node: Node, count: int, value: int = 1) -> list[Transaction]:
    txs = []
    for i, user in enumerate(USERS[:count]):
        sender = address_of(user)
        txs.append(transfer(node, user, owner(i % 4), value, node.nonce(sender)))
    return txs


def tamper(data: bytes, **header_fields: Any) -> bytes:
    block = NetBlock.decode(data)
    return NetBlock(
        block.header.copy(**header_fields),
        block.raw_txs,
        block.last_commit,
        block.evidence,
        block.beacon_reveal,
        block.round,
    ).encode()


def untouched(node: Node, head_hash: bytes) -> None:
    """The node's chain is exactly at ``head_hash`` with nothing prepared."""
    assert node.chain.head_hash == head_hash
    assert node.chain.prepared is None
    assert node.chain.world.state_root() == node.chain.head.state_root
    fresh = WorldState(node.chain.db)
    assert fresh.state_root() == node.chain.head.state_root


# --------------------------------------------------------------------------- tests


def test_app_satisfies_the_protocol(net: Net) -> None:
    app: ConsensusApp = net.nodes[0].app
    assert app.height() == 0


def test_two_nodes_agree_over_heights_with_txs(net: Net) -> None:
    a, b = net.nodes
    for height in range(1, 6):
        txs = user_txs(a, 3, value=height)
        block_hash = net.step(proposer=height % 2, txs=txs)
        net.assert_agree()
        assert a.chain.head.block_number == height
        assert a.chain.head_hash == block_hash
        body = b.chain.blocks.body(height)
        assert body is not None and len(body) == 3
        assert len(a.pool) == 0 and len(b.pool) == 0  # included txs left both pools
    # extraData commits to the previous block's commit; block 1 has none.
    assert a.chain.blocks.header(1).extra_data == b""
    for height in range(2, 6):
        header = a.chain.blocks.header(height)
        assert header.extra_data == net.commits[height - 1].hash()
    # block_and_commit: the canonical commit is the next block's last_commit, the head's is
    # the seen commit.
    for height in range(1, 6):
        data, commit = a.app.block_and_commit(height)
        assert NetBlock.decode(data).hash == a.chain.blocks.header(height).hash
        assert commit == net.commits[height]
        assert b.app.block_and_commit(height) == (data, commit)
    assert a.app.block_and_commit(0) is None and a.app.block_and_commit(6) is None


def test_own_proposal_is_not_executed_twice(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    a = net.nodes[0]
    block_hash, data = net.propose(0, user_txs(a, 2))
    calls = []
    original = a.chain.prepare_block
    monkeypatch.setattr(
        a.chain, "prepare_block", lambda *x, **k: calls.append(1) or original(*x, **k)
    )
    assert a.app.check(1, data) == block_hash
    commit = make_commit(a.app.validators(1), 1, block_hash)
    a.app.commit(1, data, commit)
    assert calls == []
    assert a.chain.head_hash == block_hash


def test_checked_block_commits_without_reexecution(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = net.nodes
    block_hash, data = net.propose(0, user_txs(a, 2))
    assert b.app.check(1, data) == block_hash
    calls = []
    original = b.chain.prepare_block
    monkeypatch.setattr(
        b.chain, "prepare_block", lambda *x, **k: calls.append(1) or original(*x, **k)
    )
    b.app.commit(1, data, make_commit(b.app.validators(1), 1, block_hash))
    assert calls == []


def test_commit_without_check_executes(net: Net) -> None:
    a, b = net.nodes
    block_hash, data = net.propose(0, user_txs(a, 2))
    commit = make_commit(a.app.validators(1), 1, block_hash)
    b.app.commit(1, data, commit)  # never checked: executed now
    a.app.commit(1, data, commit)
    net.commits[1] = commit
    net.assert_agree()


def _bad_signature(commit: Commit) -> Commit:
    (address, sig), *rest = commit.signatures
    broken = bytes([sig[0] ^ 1]) + sig[1:]
    return Commit(commit.height, commit.round, commit.block_hash, ((address, broken), *rest))


def test_tampered_blocks_are_rejected_without_trace(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = net.nodes
    net.step(txs=user_txs(a, 2))  # height 1, so that height 2 carries a last commit
    head = b.chain.head_hash
    parent_time = b.chain.head.timestamp
    block_hash, data = net.propose(0, user_txs(a, 3))
    block = NetBlock.decode(data)

    other_tx = transfer(a, USERS[0], owner(3), 999, a.nonce(address_of(USERS[0])))
    changed_tx = NetBlock(
        block.header, (other_tx.raw, *block.raw_txs[1:]), block.last_commit, block.evidence, b""
    ).encode()
    duplicated_tx = NetBlock(
        block.header, (*block.raw_txs, block.raw_txs[0]), block.last_commit, block.evidence, b""
    ).encode()
    wrong_chain = (
        USERS[0]
        .sign_transaction(
            {
                "chainId": CHAIN_ID + 1,
                "nonce": 0,
                "gas": 21_000,
                "gasPrice": GWEI,
                "to": USERS[1].address,
            }
        )
        .raw_transaction
    )
    foreign_tx = NetBlock(
        block.header, (bytes(wrong_chain),), block.last_commit, block.evidence, b""
    ).encode()
    bad_commit = _bad_signature(Commit.decode(block.last_commit))
    bad_signature = NetBlock(
        block.header.copy(extra_data=bad_commit.hash()),
        block.raw_txs,
        bad_commit.encode(),
        block.evidence,
        b"",
    ).encode()
    cases = {
        "changed tx": changed_tx,
        "rejected tx": duplicated_tx,
        "undecodable tx": foreign_tx,
        "state root": tamper(data, state_root=b"\x42" * 32),
        "gas used": tamper(data, gas_used=block.header.gas_used + 1),
        "extraData": tamper(data, extra_data=b"\x01" * 32),
        "last_commit signature": bad_signature,
        "timestamp in the past": tamper(data, timestamp=parent_time),
        "timestamp in the future": tamper(data, timestamp=int(net.clock()) + 11),
        "unknown parent": tamper(data, parent_hash=b"\x11" * 32),
        "wrong number": tamper(data, block_number=3),
        "coinbase": tamper(data, coinbase=b"\x01" * 20),
        "beacon reveal": NetBlock(  # nobody committed in this genesis: no reveal allowed
            block.header, block.raw_txs, block.last_commit, block.evidence, b"\x01" * 32
        ).encode(),
        "short beacon reveal": NetBlock(
            block.header, block.raw_txs, block.last_commit, block.evidence, b"\x01"
        ).encode(),
        "mixHash": tamper(data, mix_hash=b"\x42" * 32),
        "zero mixHash": tamper(data, mix_hash=bytes(32)),
        "round of another proposer": NetBlock(
            block.header, block.raw_txs, block.last_commit, block.evidence, b"", 1
        ).encode(),
        "round out of range": NetBlock(
            block.header, block.raw_txs, block.last_commit, block.evidence, b"", 10**6
        ).encode(),
        "garbage": b"\xc3\x01\x02\x03",
        "not rlp": b"\xff\xff",
    }
    for name, bad in cases.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cybermiles.consensus_app"):
            assert b.app.check(2, bad) is None, name
        assert "rejected" in caplog.text, name
        untouched(b, head)
    assert b.app.check(3, data) is None  # wrong height
    # The genuine block still checks and commits on both nodes.
    net.finish(block_hash, data)
    net.assert_agree()


def test_discarded_proposal_leaves_state_and_tries_unchanged(net: Net) -> None:
    a, b = net.nodes
    net.step(txs=user_txs(a, 1))
    head_root = a.chain.head.state_root
    # A proposes X (prepared: its updates sit in A's tries) ...
    x_hash, x_data = net.propose(0, user_txs(a, 3, value=7))
    assert a.chain.prepared is not None
    assert a.chain.world.state_root() == NetBlock.decode(x_data).header.state_root != head_root
    # ... but round 1's proposer B proposes Y without those txs: A drops X, checks Y.
    y_hash, y_data = b.app.propose(2, 1, net.commits[1])
    assert y_hash != x_hash
    assert a.app.check(2, y_data) == y_hash
    commit = make_commit(a.app.validators(2), 2, y_hash)
    for node in net.nodes:
        node.app.commit(2, y_data, commit)
    net.commits[2] = commit
    net.assert_agree()
    # Later blocks (X's transactions now, then new ones) still get the right roots.
    net.step(proposer=0)
    assert len(a.chain.blocks.body(3)) == 3
    net.step(proposer=0, txs=user_txs(a, 3, value=3))
    net.assert_agree()
    # Dropping a proposal explicitly restores the tries exactly.
    _, _data = net.propose(1, user_txs(b, 2))
    b.app._drop_cached()
    untouched(b, a.chain.head_hash)


def test_proof_while_a_block_is_prepared(net: Net) -> None:
    a = net.nodes[0]
    net.step(txs=user_txs(a, 1))
    user = address_of(USERS[0])
    before = a.chain.prove(user, [])
    block_hash, data = net.propose(0, user_txs(a, 2, value=5))
    assert a.chain.prove(user, []) == before  # the prepared block is suspended for proofs
    net.finish(block_hash, data)  # and put back for the commit
    net.assert_agree()
    assert a.chain.prove(user, [])[1] != before[1]


def test_divergence_when_the_committed_block_does_not_match(net: Net) -> None:
    a, b = net.nodes
    net.step(txs=user_txs(a, 1))
    head = b.chain.head_hash
    root = b.chain.head.state_root
    _block_hash, data = net.propose(0, user_txs(a, 2))
    bad = tamper(data, state_root=b"\x42" * 32)
    bad_hash = NetBlock.decode(bad).hash
    commit = make_commit(b.app.validators(2), 2, bad_hash)
    for node in (b, a):  # b never saw the block; a has its own proposal cached
        with pytest.raises(Divergence) as info:
            node.app.commit(2, bad, commit)
        message = str(info.value)
        assert "block 2" in message and "42" * 32 in message
        assert NetBlock.decode(data).header.state_root.hex() in message
        untouched(node, head)
        assert node.chain.head.state_root == root


def test_validators_follow_staking_with_two_block_offset(net: Net) -> None:
    a, _b = net.nodes
    genesis_set = a.app.validators(1)
    assert [v.address for v in genesis_set] == sorted(owner(i) for i in range(4))
    powers = {v.address: v.power for v in genesis_set}
    # Genesis stake: the self-stake (10% of the max amount), counted in gwei.
    assert powers[owner(0)] == STAKES[0] * CMT // 10 // POWER_UNIT
    assert {v.address: v.pub_key for v in genesis_set} == {
        owner(i): ed25519.public_key_bytes(CONSENSUS_KEYS[i]) for i in range(4)
    }
    assert a.app.validators(2).validators == genesis_set.validators
    net.step()
    net.step()
    # Block 3 delegates to v3; the set of 5 (after block 3) sees the new power, 4 does not.
    amount = 20_000 * CMT
    user = USERS[0]
    tx = staking_call(user, a.nonce(address_of(user)), "delegate(address)", [owner(3)], amount)
    net.step(txs=[tx])
    assert a.chain.blocks.receipts(3)[0].status == 1
    shares = a.staking().get_candidate(owner(3)).shares  # after block 3: its power
    before = a.app.validators(4).power_of(owner(3))
    after = a.app.validators(5).power_of(owner(3))
    assert after == shares // POWER_UNIT
    assert after - before >= amount // POWER_UNIT
    # v2 deactivates in block 4: it leaves the set of 6.
    tx = staking_call(OWNERS[2], a.nonce(owner(2)), "deactivateCandidacy()", [], 0)
    net.step(txs=[tx])
    assert owner(2) in a.app.validators(5)
    assert owner(2) not in a.app.validators(6)
    for _ in range(3):
        net.step(proposer=1)
    net.assert_agree()
    # A fresh node replaying the chain from block_and_commit gets the same sets, proposer
    # priorities included, at every height.
    c = net.add_node("fresh")
    for height in range(1, a.app.height() + 1):
        data, commit = a.app.block_and_commit(height)
        assert c.app.check(height, data) == commit.block_hash
        c.app.commit(height, data, commit)
    for height in range(1, a.app.height() + 3):
        assert c.app.validators(height) == a.app.validators(height), height
        assert c.app.validators(height).proposer(0) == a.app.validators(height).proposer(0)
    assert c.chain.head_hash == a.chain.head_hash
    # Proposer priorities carry across heights as CometBFT does.
    for height in range(2, a.app.height() + 1):
        previous = a.app.validators(height - 1)
        if previous.validators == a.app.validators(height).validators:
            assert a.app.validators(height) == previous.advance()


def test_restart_keeps_everything(net: Net) -> None:
    a, _b = net.nodes
    for i in range(3):
        net.step(proposer=i % 2, txs=user_txs(a, 2))
    sets = {h: a.app.validators(h) for h in range(1, 6)}
    synced = {h: a.app.block_and_commit(h) for h in range(1, 4)}
    # A prepared but uncommitted block is simply lost at a restart.
    net.propose(0, user_txs(a, 1))
    a.reopen()
    assert a.app.height() == 3
    assert {h: a.app.validators(h) for h in range(1, 6)} == sets
    assert {h: a.app.block_and_commit(h) for h in range(1, 4)} == synced
    for _ in range(2):
        net.step(proposer=0, txs=user_txs(a, 2))
        net.assert_agree()


def test_signers_feed_rewards_and_downtime(net: Net) -> None:
    a, b = net.nodes
    absent = owner(3)
    present = [owner(i) for i in range(3)]
    net.step()  # block 1
    net.step(signers=present)  # block 2's commit lacks v3 ...
    shares = {o: a.staking().get_candidate(o).shares for o in (absent, owner(0))}
    assert a.staking().get_candidate(absent).missed_blocks == 0
    net.step()  # ... so block 3 (whose last_commit it is) pays v3 nothing
    after = {o: a.staking().get_candidate(o).shares for o in (absent, owner(0))}
    assert after[absent] == shares[absent]
    assert after[owner(0)] > shares[owner(0)]
    assert a.staking().get_candidate(absent).missed_blocks == 1
    assert b.staking().get_candidate(absent).missed_blocks == 1
    net.step()  # block 4: its last_commit (of block 3) holds v3 again
    assert a.staking().get_candidate(absent).missed_blocks == 0
    assert a.staking().get_candidate(absent).shares > after[absent]
    net.assert_agree()


def _double_sign(height: int, index: int) -> DuplicateVoteEvidence:
    address = owner(index)
    votes = [
        sign_vote(
            KEY_OF[address],
            CHAIN_ID,
            Vote(VoteType.PREVOTE, height, 0, block_hash, address),
        )
        for block_hash in (b"\x01" * 32, b"\x02" * 32)
    ]
    return DuplicateVoteEvidence.from_votes(*votes)


def test_evidence_is_included_once_and_slashes(net: Net) -> None:
    a, b = net.nodes
    net.step()
    net.step()
    evidence = _double_sign(2, 1)
    a.app.add_evidence(evidence)
    a.app.add_evidence(evidence)  # deduplicated
    a.app.add_evidence(_double_sign(5, 1))  # from the future: ignored
    assert a.app.pending_evidence() == [evidence]
    shares = a.staking().get_candidate(owner(1)).shares
    net.step()
    data, _ = a.app.block_and_commit(3)
    assert NetBlock.decode(data).evidence == (evidence.encode(),)
    candidate = a.staking().get_candidate(owner(1))
    assert candidate.shares < shares and not candidate.active
    assert b.staking().get_candidate(owner(1)).shares == candidate.shares
    assert a.app.pending_evidence() == []
    a.app.add_evidence(evidence)  # already included: not kept again
    assert a.app.pending_evidence() == []
    b.app.add_evidence(evidence)
    assert b.app.pending_evidence() == []
    # A block carrying it again is invalid.
    block_hash, data = net.propose(0)
    block = NetBlock.decode(data)
    again = NetBlock(
        block.header, block.raw_txs, block.last_commit, (evidence.encode(),), b""
    ).encode()
    assert b.app.check(4, again) is None
    net.finish(block_hash, data)
    net.assert_agree()


def test_block_with_already_included_or_forged_evidence_is_rejected(net: Net) -> None:
    a, b = net.nodes
    net.step()
    net.step()
    block_hash, data = net.propose(0)
    block = NetBlock.decode(data)
    forged = _double_sign(2, 1)
    forged = DuplicateVoteEvidence(forged.vote_a, replace(forged.vote_b, signature=bytes(64)))
    bad = NetBlock(block.header, block.raw_txs, block.last_commit, (forged.encode(),), b"").encode()
    assert b.app.check(3, bad) is None
    untouched(b, a.chain.head_hash)
    net.finish(block_hash, data)


def test_consensus_power_rule() -> None:
    assert consensus_power([5 * CMT, 1]) == [5 * 10**9, 1]
    huge = [10**30, 10**30]
    scaled = consensus_power(huge)
    assert sum(scaled) <= 2**63 // 8 and scaled[0] == scaled[1] > 0


def test_block_encoding_round_trip(net: Net) -> None:
    a = net.nodes[0]
    net.step(txs=user_txs(a, 2))
    _, data = net.propose(0, user_txs(a, 1))
    block = NetBlock.decode(data)
    assert block.encode() == data
    assert rlp.decode(data)[2] == block.last_commit == net.commits[1].encode()
    assert block.header.extra_data == keccak256(block.last_commit)
    assert rlp.decode(data)[4:] == [b"", b""] and block.round == 0
    _, data1 = a.app.propose(2, 3, net.commits[1])
    assert NetBlock.decode(data1).round == 3 and rlp.decode(data1)[5] == b"\x03"
    for bad in (
        rlp.encode(rlp.decode(data)[:5]),  # the 5-item shape of before the beacon
        rlp.encode([*rlp.decode(data)[:5], b"\x00\x01"]),  # non-canonical round
        rlp.encode([*rlp.decode(data)[:5], [b""]]),  # round not an integer
        rlp.encode([*rlp.decode(data)[:5], b"\x01" * 9]),  # round beyond 64 bits
    ):
        with pytest.raises(MalformedBlock):
            NetBlock.decode(bad)
    # Stored consensus data keeps the round; values of the old 3-item shape read as round 0.
    assert decode_consensus_data(encode_consensus_data(b"c", (b"e",), b"r" * 32, 7)) == (
        b"c",
        (b"e",),
        b"r" * 32,
        7,
    )
    assert decode_consensus_data(rlp.encode([b"c", [], b""])) == (b"c", (), b"", 0)


def test_blocks_without_commitments_take_the_fallback_beacon(net: Net) -> None:
    """Nobody committed in this genesis: every block's mixHash is the fallback form, chained
    from GENESIS_BEACON, for the proposer of the block's round."""
    a, b = net.nodes
    prev = GENESIS_BEACON
    for height in range(1, 5):
        round = height % 3
        proposer = a.app.validators(height).proposer(round)
        block_hash, data = b.app.propose(height, round, net.commits.get(height - 1))
        block = NetBlock.decode(data)
        assert block.round == round and block.beacon_reveal == b""
        assert block.header.mix_hash == next_beacon(prev, None, proposer, height)
        net.finish(block_hash, data)
        prev = block.header.mix_hash
    net.assert_agree()
    with pytest.raises(ValueError):
        a.app.propose(2, 0, None)  # height > 1 needs the last commit
