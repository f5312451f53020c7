"""Helpers for the reactor tests: a fake in-memory chain, a loopback test network, a raw peer.

``FakeApp`` implements ``ConsensusApp`` deterministically: a block is
``RLP([height, parent_hash, round, proposer_tag, last_commit_hash])`` and its hash is
``sha256(block)``. It checks every commit it is given (``Commit.verify``), so a node that
commits anything without +2/3 valid precommits fails loudly.

``LoopbackNet`` runs validators (each a real ``Switch`` on 127.0.0.1 port 0 and a reactor)
in the test's event loop. A node's app, WAL directory, privval file and node key survive
``stop_node``/``start_node``, which is how a restart (or a crash: nothing is flushed on stop
that a crash would not have flushed) is simulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cybermiles.consensus.app import Divergence
from cybermiles.consensus.commit import Commit
from cybermiles.consensus.messages import (
    BLOCKSYNC_CHANNEL,
    EVIDENCE_CHANNEL,
    PROPOSAL_CHANNEL,
    STATE_CHANNEL,
    VOTE_CHANNEL,
)
from cybermiles.consensus.privval import FilePrivValidator
from cybermiles.consensus.proposer import ValidatorSet
from cybermiles.consensus.reactor import ConsensusReactor, ReactorConfig
from cybermiles.consensus.timeouts import TimeoutConfig
from cybermiles.consensus.types import Validator, Vote
from cybermiles.consensus.votes import DuplicateVoteEvidence
from cybermiles.consensus.wal import WAL
from cybermiles.crypto import ed25519
from cybermiles.p2p import NodeInfo, P2PConfig, SecretConnection, Switch, node_id_of
from cybermiles.p2p.handshake import exchange_node_info

CHAIN_ID = 1234
GENESIS_HASH = hashlib.sha256(b"reactor-test-genesis").digest()

# Roomy enough for a loaded 2-core machine; a healthy height never waits for them.
TEST_TIMEOUTS = TimeoutConfig(
    propose_ms=500,
    propose_delta_ms=100,
    prevote_ms=200,
    prevote_delta_ms=100,
    precommit_ms=200,
    precommit_delta_ms=100,
    commit_ms=20,
)
TEST_REACTOR = ReactorConfig(
    gossip_interval=0.05,
    resend_after=0.3,
    sync_request_timeout=1.0,
    sync_grace=0.2,
)


def p2p_config() -> P2PConfig:
    return P2PConfig(
        listen_addr="127.0.0.1:0",
        handshake_timeout=2.0,
        dial_timeout=2.0,
        ping_interval=5.0,
        pong_timeout=10.0,
        write_timeout=10.0,
        dial_backoff_base=0.05,
        dial_backoff_max=0.3,
        ban_seconds=60.0,
    )


def validator_key(i: int) -> Ed25519PrivateKey:
    return ed25519.private_key_from_seed(hashlib.sha256(b"validator %d" % i).digest())


def node_key(i: int) -> Ed25519PrivateKey:
    return ed25519.private_key_from_seed(hashlib.sha256(b"node %d" % i).digest())


def validator_address(i: int) -> bytes:
    return bytes(19) + bytes([i + 1])


def genesis_validators(n: int, powers: tuple[int, ...] | None = None) -> ValidatorSet:
    powers = powers or (10,) * n
    return ValidatorSet.from_validators(
        Validator(validator_address(i), ed25519.public_key_bytes(validator_key(i)), powers[i])
        for i in range(n)
    )


# --- the fake chain --------------------------------------------------------------------------


def block_hash(block: bytes) -> bytes:
    return hashlib.sha256(block).digest()


def decode_block(block: bytes) -> tuple[int, bytes, int, bytes, bytes]:
    height, parent, round_, proposer, last_commit, _ = rlp.decode(block)
    return (
        int.from_bytes(height, "big"),
        parent,
        int.from_bytes(round_, "big"),
        proposer,
        last_commit,
    )


class FakeApp:
    """An in-memory ``ConsensusApp`` (see the module docstring)."""

    def __init__(
        self, genesis: ValidatorSet, tag: bytes, *, diverge_at: int | None = None, pad: int = 0
    ):
        self.genesis = genesis
        self.tag = tag
        self.pad = pad  # filler bytes per block (to test large blocks)
        self.diverge_at = diverge_at
        self.blocks: list[bytes] = []
        self.commits: list[Commit] = []
        self.evidence: list[DuplicateVoteEvidence] = []
        self._sets: dict[int, ValidatorSet] = {1: genesis}

    def height(self) -> int:
        return len(self.blocks)

    def head_hash(self) -> bytes:
        return block_hash(self.blocks[-1]) if self.blocks else GENESIS_HASH

    def validators(self, height: int) -> ValidatorSet:
        assert 1 <= height <= self.height() + 1, (height, self.height())
        if height not in self._sets:
            self._sets[height] = self.validators(height - 1).advance()
        return self._sets[height]

    def propose(self, height: int, round: int, last_commit: Commit | None) -> tuple[bytes, bytes]:
        assert height == self.height() + 1
        last = last_commit.hash() if last_commit is not None else b""
        block = rlp.encode([height, self.head_hash(), round, self.tag, last, b"\x00" * self.pad])
        return block_hash(block), block

    def check(self, height: int, block: bytes) -> bytes | None:
        try:
            h, parent, _, _, _ = decode_block(block)
        except Exception:
            return None
        if h != height or height != self.height() + 1 or parent != self.head_hash():
            return None
        return block_hash(block)

    def commit(self, height: int, block: bytes, commit: Commit) -> None:
        assert height == self.height() + 1, (height, self.height())
        assert self.check(height, block) == commit.block_hash
        commit.verify(CHAIN_ID, self.validators(height), height=height)
        if self.diverge_at == height:
            raise Divergence(f"state root mismatch at height {height}")
        self.blocks.append(block)
        self.commits.append(commit)

    def add_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        self.evidence.append(evidence)

    def block_and_commit(self, height: int) -> tuple[bytes, Commit] | None:
        if 1 <= height <= self.height():
            return self.blocks[height - 1], self.commits[height - 1]
        return None

    def proposer_tags(self) -> list[bytes]:
        return [decode_block(b)[3] for b in self.blocks]


# --- the network -----------------------------------------------------------------------------


@dataclass
class NetNode:
    index: int
    home: Path
    app: FakeApp
    validator: bool = True
    switch: Switch | None = None
    reactor: ConsensusReactor | None = None
    wal: WAL | None = None
    starts: int = 0

    @property
    def running(self) -> bool:
        return self.reactor is not None and self.reactor.running

    @property
    def height(self) -> int:
        return self.app.height()


@dataclass
class LoopbackNet:
    """``n`` validators with equal power (plus optional full nodes), on loopback."""

    tmp: Path
    n: int
    full_nodes: int = 0
    timeouts: TimeoutConfig = TEST_TIMEOUTS
    config: ReactorConfig = TEST_REACTOR
    nodes: list[NetNode] = field(default_factory=list)
    votes: dict[tuple[bytes, int, int, int], set[bytes | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.genesis = genesis_validators(self.n)
        for i in range(self.n + self.full_nodes):
            app = FakeApp(self.genesis, b"node%d" % i)
            self.nodes.append(NetNode(i, self.tmp / f"node{i}", app, validator=i < self.n))

    def _record_vote(self, vote: Vote) -> None:
        key = (vote.validator, vote.height, vote.round, int(vote.type))
        self.votes.setdefault(key, set()).add(vote.block_hash)

    def equivocations(self) -> dict[tuple[bytes, int, int, int], set[bytes | None]]:
        """Every (validator, height, round, type) with more than one signed value seen."""
        return {k: v for k, v in self.votes.items() if len(v) > 1}

    async def start_node(
        self,
        i: int,
        reactor_cls: type[ConsensusReactor] = ConsensusReactor,
        *,
        connect: bool = True,
        **reactor_kwargs: Any,
    ) -> NetNode:
        node = self.nodes[i]
        assert not node.running
        node.home.mkdir(parents=True, exist_ok=True)
        switch = Switch(
            node_key(i), p2p_config(), chain_id=CHAIN_ID, genesis_hash=GENESIS_HASH, moniker=f"n{i}"
        )
        priv = (
            FilePrivValidator(validator_key(i), node.home / "priv_validator_state.json")
            if node.validator
            else None
        )
        wal = WAL(node.home / "wal")
        reactor = reactor_cls(
            node.app,
            switch,
            priv,
            wal,
            CHAIN_ID,
            self.timeouts,
            config=self.config,
            **reactor_kwargs,
        )
        reactor.add_vote_listener(self._record_vote)
        node.switch, node.reactor, node.wal = switch, reactor, wal
        node.starts += 1
        await switch.start()
        await reactor.start()
        if connect:
            self.connect(i)
        return node

    def connect(self, i: int) -> None:
        """Have node ``i`` dial (and keep dialing) every other running node."""
        node = self.nodes[i]
        assert node.switch is not None
        for other in self.nodes:
            if other is not node and other.running and other.switch is not None:
                node.switch.add_persistent_peer(other.switch.listen_address)

    async def stop_node(self, i: int) -> None:
        node = self.nodes[i]
        if node.reactor is not None:
            await node.reactor.stop()
        if node.switch is not None:
            await node.switch.stop()
        if node.wal is not None:
            node.wal.close()
        node.reactor = node.switch = node.wal = None

    async def start(self, indices: list[int] | None = None) -> None:
        for i in range(len(self.nodes)) if indices is None else indices:
            await self.start_node(i)

    async def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                await self.stop_node(node.index)

    def heights(self, indices: list[int] | None = None) -> list[int]:
        chosen = self.nodes if indices is None else [self.nodes[i] for i in indices]
        return [n.height for n in chosen]

    async def wait_heights(self, height: int, indices: list[int], timeout: float = 20.0) -> None:
        await eventually(
            lambda: min(self.heights(indices)) >= height,
            timeout,
            lambda: f"heights {self.heights()} never reached {height} on {indices}",
        )

    def assert_same_chain(self, indices: list[int] | None = None) -> None:
        chosen = self.nodes if indices is None else [self.nodes[i] for i in indices]
        common = min(n.height for n in chosen)
        for h in range(common):
            hashes = {block_hash(n.app.blocks[h]) for n in chosen}
            assert len(hashes) == 1, f"nodes disagree at height {h + 1}"
            assert {n.app.commits[h].block_hash for n in chosen} == hashes


async def eventually(
    predicate: Callable[[], bool],
    timeout: float = 20.0,
    message: Callable[[], str] | str = "condition not reached in time",
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        await asyncio.sleep(0.02)


def run(coro: Awaitable[Any], timeout: float = 50.0) -> Any:
    async def main() -> Any:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(main())


# --- a hand-driven peer ----------------------------------------------------------------------


class RawPeer:
    """A peer that completes the real handshake and then sends whatever the test wants."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.node_id = node_id_of(self.key)
        self.conn: SecretConnection | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self, switch: Switch, local_host: str) -> None:
        addr = switch.listen_address
        reader, self.writer = await asyncio.open_connection(
            addr.host, addr.port, local_addr=(local_host, 0)
        )
        self.conn = await SecretConnection.handshake(reader, self.writer, self.key, timeout=3)
        info = NodeInfo(
            node_id=self.node_id,
            listen_addr="",
            chain_id=CHAIN_ID,
            genesis_hash=GENESIS_HASH,
            moniker="raw",
            channels=(
                STATE_CHANNEL,
                PROPOSAL_CHANNEL,
                VOTE_CHANNEL,
                EVIDENCE_CHANNEL,
                BLOCKSYNC_CHANNEL,
            ),
        )
        await exchange_node_info(self.conn, info, timeout=3)

    async def send(self, channel: int, payload: bytes) -> None:
        assert self.conn is not None
        await self.conn.write_message(bytes([channel]) + payload)

    async def receive(self, channel: int, timeout: float = 10.0) -> bytes:
        """The payload of the next message on ``channel`` (others are skipped)."""
        assert self.conn is not None
        async with asyncio.timeout(timeout):
            while True:
                message = await self.conn.read_message(lambda _head: 32 << 20)
                if message[0] == channel:
                    return message[1:]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
