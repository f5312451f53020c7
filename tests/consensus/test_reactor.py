"""The consensus reactor on a real loopback network: liveness, fault tolerance, restarts,
block sync, byzantine validators, bad peers and divergence.

Every node runs in the test's event loop with real ``Switch``es (port 0) and real WAL and
privval files; waits have deadlines, never fixed sleeps for progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import rlp
from reactor_harness import (
    CHAIN_ID,
    TEST_REACTOR,
    TEST_TIMEOUTS,
    FakeApp,
    LoopbackNet,
    RawPeer,
    block_hash,
    eventually,
    genesis_validators,
    node_key,
    run,
    validator_address,
    validator_key,
)

from cybermiles.consensus import reactor as reactor_module
from cybermiles.consensus.app import Divergence
from cybermiles.consensus.commit import Commit
from cybermiles.consensus.messages import (
    BLOCKSYNC_CHANNEL,
    EVIDENCE_CHANNEL,
    PROPOSAL_CHANNEL,
    STATE_CHANNEL,
    VOTE_CHANNEL,
    BlockRequest,
    BlockResponse,
    EvidenceMessage,
    ProposalMessage,
    Status,
    VoteMessage,
    encode_message,
)
from cybermiles.consensus.reactor import ConsensusReactor
from cybermiles.consensus.signing import sign_proposal, sign_vote
from cybermiles.consensus.types import Proposal, Step, Vote, VoteType
from cybermiles.consensus.votes import DuplicateVoteEvidence
from cybermiles.consensus.wal import WAL
from cybermiles.p2p import node_id_of

ALL = [0, 1, 2, 3]
VoteLog = dict[tuple[bytes, int, int, int], set[bytes | None]]


def test_four_validators_commit_identical_chains_and_tolerate_one_failure(tmp_path: Path) -> None:
    async def main() -> None:
        net = LoopbackNet(tmp_path, 4)
        await net.start()
        try:
            await net.wait_heights(10, ALL)
            net.assert_same_chain()
            # Every node's commits hold +2/3 valid precommits (FakeApp.commit verified them).
            assert all(len(c.signatures) >= 3 for n in net.nodes for c in n.app.commits)
            # Stop 1 of 4: the other three carry on.
            await net.stop_node(3)
            base = max(net.heights())
            await net.wait_heights(base + 5, [0, 1, 2])
            # Stop a second one: 2 of 4 is not +2/3, the chain halts.
            await net.stop_node(2)
            await asyncio.sleep(0.3)  # a height in flight may still complete
            halted = max(net.heights([0, 1]))
            await asyncio.sleep(1.5)
            assert max(net.heights([0, 1])) <= halted
            # One returns (same WAL, privval and app): the chain resumes.
            await net.start_node(2)
            await net.wait_heights(halted + 3, [0, 1, 2], timeout=30)
            net.assert_same_chain([0, 1, 2])
            assert not net.equivocations()
        finally:
            await net.stop()

    run(main())


def test_restarted_validator_replays_wal_and_never_equivocates(tmp_path: Path) -> None:
    async def main() -> None:
        net = LoopbackNet(tmp_path, 4)
        await net.start()
        try:
            await net.wait_heights(3, ALL)
            victim = net.nodes[1]
            assert victim.reactor is not None
            # Stop it right after it signed a prevote, i.e. in the middle of a height.
            signed = asyncio.Event()
            address = validator_address(1)
            victim.reactor.add_vote_listener(
                lambda v: (
                    signed.set() if v.validator == address and v.type == VoteType.PREVOTE else None
                )
            )
            await asyncio.wait_for(signed.wait(), 10)
            await net.stop_node(1)
            stopped_at = victim.height
            await net.wait_heights(stopped_at + 2, [0, 2, 3])
            await net.start_node(1)
            head = max(net.heights())
            await net.wait_heights(head + 3, ALL, timeout=30)
            net.assert_same_chain()
            assert not net.equivocations(), net.equivocations()
            # It took part again: its precommits appear in commits after the restart.
            later = [c for n in net.nodes for c in n.app.commits[head:]]
            assert any(address in c.signers() for c in later)
        finally:
            await net.stop()

    run(main())


def test_late_node_block_syncs_to_the_head_then_participates(tmp_path: Path) -> None:
    async def main() -> None:
        net = LoopbackNet(tmp_path, 4, full_nodes=1)
        await net.start([0, 1, 2, 4])  # validator 3 is late; node 4 is a full node
        try:
            await net.wait_heights(8, [0, 1, 2, 4])
            late = net.nodes[3]
            await net.start_node(3)
            head = max(net.heights([0, 1, 2]))
            await net.wait_heights(head, [3])
            net.assert_same_chain()
            # Now it participates: a block it proposed gets committed by everyone.
            await eventually(
                lambda: b"node3" in net.nodes[0].app.proposer_tags()[head:],
                30,
                "the late validator never proposed a committed block",
            )
            await net.wait_heights(late.height, ALL)
            net.assert_same_chain()
            assert not net.equivocations()
        finally:
            await net.stop()

    run(main())


class DoublePrevoter(ConsensusReactor):
    """Byzantine: every prevote goes out together with a conflicting one (privval bypassed)."""

    evil_key = validator_key(3)

    def _broadcast_vote(self, vote: Vote) -> None:
        super()._broadcast_vote(vote)
        if vote.type != VoteType.PREVOTE or self.switch is None:
            return
        other = hashlib.sha256(b"evil" + (vote.block_hash or b"")).digest()
        evil = sign_vote(self.evil_key, CHAIN_ID, replace(vote, block_hash=other, signature=b""))
        self.switch.broadcast(VOTE_CHANNEL, encode_message(VoteMessage(evil)))


def test_double_signing_validator_yields_evidence(tmp_path: Path) -> None:
    async def main() -> None:
        net = LoopbackNet(tmp_path, 4)
        await net.start([0, 1, 2])
        await net.start_node(3, DoublePrevoter)
        try:
            await eventually(
                lambda: all(net.nodes[i].app.evidence for i in (0, 1, 2)),
                20,
                "no evidence reached the honest apps",
            )
            for i in (0, 1, 2):
                for evidence in net.nodes[i].app.evidence:
                    assert evidence.validator == validator_address(3)
                    evidence.verify(CHAIN_ID, net.nodes[i].app.validators(evidence.height))
            # The byzantine node is not banned (its messages are validly signed) and the chain
            # keeps going.
            base = max(net.heights())
            await net.wait_heights(base + 3, [0, 1, 2])
            net.assert_same_chain()
        finally:
            await net.stop()

    run(main())


class OnePeerDoublePrevoter(ConsensusReactor):
    """Byzantine: every prevote goes to all peers, a conflicting one to node 0 only."""

    evil_key = validator_key(3)
    target = node_id_of(node_key(0))

    def _broadcast_vote(self, vote: Vote) -> None:
        super()._broadcast_vote(vote)  # queued first: node 0 counts (and relays) this one
        if vote.type != VoteType.PREVOTE or self.switch is None:
            return
        other = hashlib.sha256(b"evil" + (vote.block_hash or b"")).digest()
        evil = sign_vote(self.evil_key, CHAIN_ID, replace(vote, block_hash=other, signature=b""))
        self.switch.send(self.target, VOTE_CHANNEL, encode_message(VoteMessage(evil)))


def test_evidence_seen_by_one_node_is_gossiped_to_all(tmp_path: Path) -> None:
    async def main() -> None:
        net = LoopbackNet(tmp_path, 4)
        await net.start([0, 1, 2])
        await net.start_node(3, OnePeerDoublePrevoter)
        seen: list[VoteLog] = [{} for _ in ALL]  # per node: the votes it accepted
        for i in ALL:

            def record(vote: Vote, votes: VoteLog = seen[i]) -> None:
                key = (vote.validator, vote.height, vote.round, int(vote.type))
                votes.setdefault(key, set()).add(vote.block_hash)

            reactor = net.nodes[i].reactor
            assert reactor is not None
            reactor.add_vote_listener(record)
        try:
            await eventually(
                lambda: all(net.nodes[i].app.evidence for i in ALL),
                20,
                lambda: f"evidence per node: {[len(n.app.evidence) for n in net.nodes]}",
            )
            for i in ALL:
                for evidence in net.nodes[i].app.evidence:
                    assert evidence.validator == validator_address(3)
                    evidence.verify(CHAIN_ID, net.nodes[i].app.validators(evidence.height))
                hashes = [e.hash() for e in net.nodes[i].app.evidence]
                assert len(hashes) == len(set(hashes))  # each evidence handed over once
            # Only node 0 ever saw both votes: 1 and 2 got the evidence from gossip alone.
            assert any(len(v) > 1 for v in seen[0].values())
            for i in (1, 2):
                assert not any(len(v) > 1 for v in seen[i].values()), f"node {i} saw both"
            base = max(net.heights())
            await net.wait_heights(base + 2, [0, 1, 2])
            net.assert_same_chain()
        finally:
            await net.stop()

    run(main())


def _double_vote(i: int, height: int, round: int, key_of: int | None = None) -> list[Vote]:
    """Two prevotes of validator ``i`` for different blocks, signed with ``key_of``'s key."""
    key = validator_key(i if key_of is None else key_of)
    return [
        sign_vote(key, CHAIN_ID, Vote(VoteType.PREVOTE, height, round, h, validator_address(i)))
        for h in (hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest())
    ]


def test_evidence_from_a_peer_reaches_every_app_and_forgers_get_banned(tmp_path: Path) -> None:
    async def main() -> None:
        net = LoopbackNet(tmp_path, 4)
        await net.start()
        target = net.nodes[0]
        assert target.switch is not None and target.reactor is not None
        peers: list[RawPeer] = []

        async def raw_peer() -> RawPeer:
            peer = RawPeer()
            peers.append(peer)
            await peer.connect(target.switch, f"127.0.2.{len(peers) + 1}")
            return peer

        def has(node: int, evidence: DuplicateVoteEvidence) -> bool:
            return evidence.hash() in {e.hash() for e in net.nodes[node].app.evidence}

        try:
            await net.wait_heights(2, ALL)
            # Valid evidence of an equivocation nobody saw, given to node 0 only.
            good = DuplicateVoteEvidence.from_votes(*_double_vote(1, 1, 7))
            honest = await raw_peer()
            await honest.send(EVIDENCE_CHANNEL, encode_message(EvidenceMessage(good)))
            await eventually(
                lambda: all(has(i, good) for i in ALL), 10, "evidence did not reach every app"
            )
            await honest.send(EVIDENCE_CHANNEL, encode_message(EvidenceMessage(good)))  # again

            # Unknown height (no validator set yet): skipped without a ban. A valid evidence
            # sent after it on the same connection shows that it was processed.
            future = DuplicateVoteEvidence.from_votes(*_double_vote(2, 10_000, 0, key_of=9))
            late = DuplicateVoteEvidence.from_votes(*_double_vote(2, 1, 3))
            await honest.send(EVIDENCE_CHANNEL, encode_message(EvidenceMessage(future)))
            await honest.send(EVIDENCE_CHANNEL, encode_message(EvidenceMessage(late)))
            await eventually(lambda: has(0, late), 10, "second evidence not handled")
            assert not target.switch.is_banned(node_id=honest.node_id)

            canonical = DuplicateVoteEvidence.from_votes(*_double_vote(2, 1, 4))
            swapped = DuplicateVoteEvidence(canonical.vote_b, canonical.vote_a)
            forged = [
                # signed with another key
                encode_message(EvidenceMessage(DuplicateVoteEvidence(*_double_vote(2, 1, 5, 9)))),
                encode_message(EvidenceMessage(swapped)),  # not in canonical order
                # votes of two validators
                encode_message(
                    EvidenceMessage(
                        DuplicateVoteEvidence(_double_vote(1, 1, 6)[0], _double_vote(2, 1, 6)[1])
                    )
                ),
                b"\x07" + rlp.encode([b"junk", b"junk"]),  # malformed
            ]
            liars = []
            for payload in forged:
                liar = await raw_peer()
                liars.append(liar)
                await liar.send(EVIDENCE_CHANNEL, payload)
            for n, liar in enumerate(liars):
                await eventually(
                    lambda p=liar: target.switch.is_banned(node_id=p.node_id),
                    10,
                    f"forger {n} was not banned",
                )
            for node in net.nodes:
                hashes = [e.hash() for e in node.app.evidence]
                assert len(hashes) == len(set(hashes))
                for evidence in node.app.evidence:
                    evidence.verify(CHAIN_ID, node.app.validators(evidence.height))
            assert len(net.nodes[0].app.evidence) == 2  # good and late, once each
            base = max(net.heights())
            await net.wait_heights(base + 2, ALL)
            net.assert_same_chain()
        finally:
            for peer in peers:
                peer.close()
            await net.stop()

    run(main())


def test_evidence_seen_set_dedupes_and_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reactor_module, "MAX_SEEN_EVIDENCE", 3)
    app = FakeApp(genesis_validators(4), b"solo")
    wal = WAL(tmp_path / "wal")
    try:
        reactor = ConsensusReactor(
            app, None, None, wal, CHAIN_ID, TEST_TIMEOUTS, config=TEST_REACTOR
        )
        items = [DuplicateVoteEvidence.from_votes(*_double_vote(1, 1, r)) for r in range(5)]
        for evidence in items + items[3:]:
            reactor._on_evidence(None, evidence)
        assert app.evidence == items  # each once
        assert len(reactor._seen_evidence) == 3
        reactor._on_evidence(None, items[0])  # forgotten: verified and handed over again
        assert app.evidence == [*items, items[0]]
        # No validator set for the height: skipped, not remembered.
        reactor._on_evidence(None, DuplicateVoteEvidence.from_votes(*_double_vote(1, 50, 0)))
        assert len(app.evidence) == 6
    finally:
        wal.close()


def test_bad_consensus_messages_get_the_peer_banned(tmp_path: Path) -> None:
    async def main() -> None:
        net = LoopbackNet(tmp_path, 4)
        await net.start()
        target = net.nodes[0]
        assert target.switch is not None and target.reactor is not None
        stranger = Proposal(1, 0, bytes(32), -1, validator_address(0))
        forged_key = validator_key(9)  # not validator 1's key
        peers: list[RawPeer] = []
        try:
            await net.wait_heights(2, ALL)
            reactor = target.reactor

            # Well formed but signed by the wrong key. Messages of past heights are dropped
            # unchecked, so each goes out for the current height and the two after it (the
            # next height's are checked when it starts).
            def forged_votes() -> list[bytes]:
                return [
                    encode_message(VoteMessage(sign_vote(forged_key, CHAIN_ID, vote)))
                    for h in range(reactor.height, reactor.height + 3)
                    for vote in [Vote(VoteType.PREVOTE, h, 0, None, validator_address(1))]
                ]

            def forged_proposals() -> list[bytes]:
                return [
                    encode_message(ProposalMessage(sign_proposal(forged_key, CHAIN_ID, p), b"b"))
                    for h in range(reactor.height, reactor.height + 3)
                    for p in [replace(stranger, height=h)]
                ]

            cases: list[tuple[int, Callable[[], list[bytes]]]] = [
                (VOTE_CHANNEL, lambda: [b"\x03garbage"]),  # not RLP
                (STATE_CHANNEL, lambda: [b"\x09" + rlp.encode([1])]),  # unknown message type
                (PROPOSAL_CHANNEL, lambda: [b"\x02" + rlp.encode([b"x", b"y"])]),  # bad proposal
                (VOTE_CHANNEL, lambda: [b""]),  # empty
                (VOTE_CHANNEL, forged_votes),
                (PROPOSAL_CHANNEL, forged_proposals),
            ]
            for n, (channel, payloads) in enumerate(cases):
                peer = RawPeer()
                peers.append(peer)
                await peer.connect(target.switch, f"127.0.0.{n + 2}")
                for payload in payloads():
                    with contextlib.suppress(Exception):  # banned after the first one
                        await peer.send(channel, payload)
            for n, peer in enumerate(peers):
                await eventually(
                    lambda p=peer: target.switch.is_banned(node_id=p.node_id),
                    10,
                    f"peer of case {n} was not banned",
                )
            base = max(net.heights())
            await net.wait_heights(base + 3, ALL)
            net.assert_same_chain()
        finally:
            for peer in peers:
                peer.close()
            await net.stop()

    run(main())


def test_divergence_stops_the_reactor_with_the_error(tmp_path: Path) -> None:
    async def main() -> None:
        net = LoopbackNet(tmp_path, 4)
        net.nodes[3].app.diverge_at = 3
        await net.start()
        try:
            reactor = net.nodes[3].reactor
            assert reactor is not None
            with pytest.raises(Divergence, match="height 3"):
                await asyncio.wait_for(reactor.wait(), 20)
            assert not reactor.running
            assert net.nodes[3].height == 2  # nothing past the divergence was committed
            await net.wait_heights(6, [0, 1, 2])
            assert net.nodes[3].height == 2
            net.assert_same_chain()
        finally:
            await net.stop()

    run(main())


def test_block_sync_bans_peers_serving_bad_blocks_then_syncs(tmp_path: Path) -> None:
    async def main() -> None:
        net = LoopbackNet(tmp_path, 4, full_nodes=1)
        await net.start(ALL)
        liars: list[RawPeer] = []
        try:
            await net.wait_heights(4, ALL)
            good = net.nodes[0].app
            syncing = await net.start_node(4, connect=False)
            assert syncing.switch is not None
            forged = Commit(
                1,
                0,
                block_hash(good.blocks[0]),
                tuple((validator_address(i), b"\x01" * 64) for i in range(4)),
            )
            responses = [
                (good.blocks[0], forged),  # signatures that do not verify
                (good.blocks[1], good.commits[0]),  # a real commit, for another block
            ]
            for n, (block, commit) in enumerate(responses):
                liar = RawPeer()
                liars.append(liar)
                await liar.connect(syncing.switch, f"127.0.1.{n + 2}")
                status = Status(height=20, round=0, step=Step.PROPOSE, app_height=19)
                await liar.send(STATE_CHANNEL, encode_message(status))
                request = await liar.receive(BLOCKSYNC_CHANNEL)
                assert request == encode_message(BlockRequest(1))
                await liar.send(BLOCKSYNC_CHANNEL, encode_message(BlockResponse(1, block, commit)))
                await eventually(
                    lambda p=liar: syncing.switch.is_banned(node_id=p.node_id),
                    10,
                    f"liar {n} was not banned",
                )
            assert syncing.height == 0
            net.connect(4)
            await net.wait_heights(max(net.heights(ALL)), [4], timeout=30)
            net.assert_same_chain()
        finally:
            for liar in liars:
                liar.close()
            await net.stop()

    run(main())
