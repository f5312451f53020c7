"""VoteSet / HeightVoteSet tallies, duplicates and equivocation evidence."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cybermiles.consensus.proposer import ValidatorSet
from cybermiles.consensus.signing import sign_vote
from cybermiles.consensus.types import Validator, Vote, VoteType
from cybermiles.consensus.votes import (
    MISSING,
    AddVoteResult,
    DuplicateVoteEvidence,
    HeightVoteSet,
    InvalidEvidence,
    InvalidVote,
    VoteSet,
)
from cybermiles.crypto import ed25519

CHAIN = 1234
KEYS = [ed25519.private_key_from_seed(bytes([i + 1]) * 32) for i in range(4)]
ADDRS = [bytes([0xA0 + i]) * 20 for i in range(4)]
A, B = b"\xaa" * 32, b"\xbb" * 32


def make_set(powers: list[int]) -> ValidatorSet:
    return ValidatorSet.from_validators(
        Validator(ADDRS[i], ed25519.public_key_bytes(KEYS[i]), p) for i, p in enumerate(powers)
    )


def signed(
    i: int,
    block: bytes | None,
    *,
    round: int = 0,
    type: VoteType = VoteType.PREVOTE,
    height: int = 1,
    chain: int = CHAIN,
) -> Vote:
    return sign_vote(KEYS[i], chain, Vote(type, height, round, block, ADDRS[i]))


def test_two_thirds_for_a_block() -> None:
    vs = VoteSet(CHAIN, 1, 0, VoteType.PREVOTE, make_set([1, 1, 1, 1]))
    assert vs.two_thirds_majority() is MISSING
    assert vs.add_vote(signed(0, A)) is AddVoteResult.ADDED
    assert vs.add_vote(signed(1, A)) is AddVoteResult.ADDED
    assert not vs.has_two_thirds_any() and vs.has_one_third_any()
    assert vs.two_thirds_majority() is MISSING
    vs.add_vote(signed(2, B))
    assert vs.has_two_thirds_any()  # 3 of 4 voted, split
    assert vs.two_thirds_majority() is MISSING
    vs.add_vote(signed(3, A))
    assert vs.two_thirds_majority() == A
    assert vs.power_for(A) == 3 and vs.power_for(B) == 1 and vs.sum == 4
    assert vs.has_all()


def test_two_thirds_for_nil_and_exact_threshold() -> None:
    vs = VoteSet(CHAIN, 1, 0, VoteType.PRECOMMIT, make_set([1, 1, 1]))
    vs.add_vote(signed(0, None, type=VoteType.PRECOMMIT))
    vs.add_vote(signed(1, None, type=VoteType.PRECOMMIT))
    # 2 of 3 is exactly 2/3: not more than 2/3.
    assert vs.two_thirds_majority() is MISSING
    vs.add_vote(signed(2, None, type=VoteType.PRECOMMIT))
    assert vs.two_thirds_majority() is None
    assert vs.has_two_thirds_majority()


def test_one_third_threshold_is_strict() -> None:
    vs = VoteSet(CHAIN, 1, 0, VoteType.PREVOTE, make_set([1, 1, 1]))
    vs.add_vote(signed(0, A))
    assert not vs.has_one_third_any()  # exactly 1/3
    vs.add_vote(signed(1, A))
    assert vs.has_one_third_any()


def test_weighted_power() -> None:
    vs = VoteSet(CHAIN, 1, 0, VoteType.PREVOTE, make_set([7, 1, 1, 1]))
    vs.add_vote(signed(0, A))
    assert vs.two_thirds_majority() == A  # 7 of 10


def test_duplicate_is_ignored() -> None:
    vs = VoteSet(CHAIN, 1, 0, VoteType.PREVOTE, make_set([1, 1, 1, 1]))
    v = signed(0, A)
    assert vs.add_vote(v) is AddVoteResult.ADDED
    assert vs.add_vote(v) is AddVoteResult.DUPLICATE
    assert vs.sum == 1 and len(vs) == 1


def test_conflicting_vote_gives_evidence_and_is_not_counted() -> None:
    vset = make_set([1, 1, 1, 1])
    vs = VoteSet(CHAIN, 1, 0, VoteType.PREVOTE, vset)
    first, second = signed(0, B), signed(0, A)
    vs.add_vote(first)
    evidence = vs.add_vote(second)
    assert isinstance(evidence, DuplicateVoteEvidence)
    assert (evidence.vote_a, evidence.vote_b) == (second, first)  # canonical: lower hash first
    assert vs.power_for(A) == 0 and vs.power_for(B) == 1 and vs.get(ADDRS[0]) == first
    evidence.verify(CHAIN, vset)
    # Same evidence whatever order the votes arrived in.
    other = VoteSet(CHAIN, 1, 0, VoteType.PREVOTE, vset)
    other.add_vote(second)
    assert other.add_vote(first) == evidence
    assert other.add_vote(first).hash() == evidence.hash()  # type: ignore[union-attr]
    # Nil vs a block is a conflict too; nil sorts first.
    nil_set = VoteSet(CHAIN, 1, 0, VoteType.PREVOTE, vset)
    nil_set.add_vote(signed(1, A))
    ev = nil_set.add_vote(signed(1, None))
    assert isinstance(ev, DuplicateVoteEvidence) and ev.vote_a.block_hash is None


def test_invalid_votes_rejected() -> None:
    vs = VoteSet(CHAIN, 1, 0, VoteType.PREVOTE, make_set([1, 1, 1]))
    with pytest.raises(InvalidVote, match="not a validator"):
        vs.add_vote(signed(3, A))
    with pytest.raises(InvalidVote, match="signature"):
        vs.add_vote(replace(signed(0, A), signature=b"\x00" * 64))
    with pytest.raises(InvalidVote, match="signature"):
        vs.add_vote(signed(0, A, chain=19))
    with pytest.raises(InvalidVote, match="added to the set"):
        vs.add_vote(signed(0, A, round=1))
    with pytest.raises(InvalidVote, match="added to the set"):
        vs.add_vote(signed(0, A, type=VoteType.PRECOMMIT))
    # A forged conflicting vote (bad signature) is not evidence.
    vs.add_vote(signed(0, A))
    with pytest.raises(InvalidVote):
        vs.add_vote(replace(signed(0, B), signature=signed(0, A).signature))
    assert vs.sum == 1


def test_evidence_verification_failures() -> None:
    vset = make_set([1, 1, 1, 1])
    good = DuplicateVoteEvidence.from_votes(signed(0, A), signed(0, B))
    good.verify(CHAIN, vset)
    with pytest.raises(InvalidEvidence, match="canonical"):
        DuplicateVoteEvidence(good.vote_b, good.vote_a).verify(CHAIN, vset)
    with pytest.raises(InvalidEvidence, match="same block"):
        DuplicateVoteEvidence(signed(0, A), signed(0, A)).verify(CHAIN, vset)
    with pytest.raises(InvalidEvidence, match="different validators"):
        DuplicateVoteEvidence.from_votes(signed(0, A), signed(1, B)).verify(CHAIN, vset)
    with pytest.raises(InvalidEvidence, match="different height"):
        DuplicateVoteEvidence.from_votes(signed(0, A), signed(0, B, round=1)).verify(CHAIN, vset)
    with pytest.raises(InvalidEvidence, match="signature"):
        good.verify(19, vset)
    with pytest.raises(InvalidEvidence, match="not a validator"):
        good.verify(CHAIN, make_set([0 + 1, 1, 1, 1]).with_changes([Validator(ADDRS[0], b"", 0)]))


def test_make_commit() -> None:
    vset = make_set([1, 1, 1, 1])
    vs = VoteSet(CHAIN, 1, 0, VoteType.PRECOMMIT, vset)
    for i in (2, 0, 1):
        vs.add_vote(signed(i, A, type=VoteType.PRECOMMIT))
    vs.add_vote(signed(3, None, type=VoteType.PRECOMMIT))
    commit = vs.make_commit()
    assert commit.block_hash == A and commit.signers() == {ADDRS[0], ADDRS[1], ADDRS[2]}
    commit.verify(CHAIN, vset)
    with pytest.raises(ValueError):
        VoteSet(CHAIN, 1, 0, VoteType.PREVOTE, vset).make_commit()
    with pytest.raises(ValueError):
        VoteSet(CHAIN, 1, 0, VoteType.PRECOMMIT, vset).make_commit()


def test_height_vote_set() -> None:
    vset = make_set([1, 1, 1, 1])
    hvs = HeightVoteSet(CHAIN, 1, vset)
    for i in range(3):
        hvs.add_vote(signed(i, A, round=0))
        hvs.add_vote(signed(i, B, round=2))
        hvs.add_vote(signed(i, B, round=2, type=VoteType.PRECOMMIT))
    assert hvs.prevotes(0).two_thirds_majority() == A
    assert hvs.precommits(2).two_thirds_majority() == B
    assert hvs.pol_info() == (2, B)
    assert hvs.rounds() == (0, 2)
    assert hvs.prevotes(7).sum == 0
    # Votes of different rounds never conflict.
    assert hvs.add_vote(signed(3, A, round=1)) is AddVoteResult.ADDED
    with pytest.raises(InvalidVote, match="height"):
        hvs.add_vote(signed(0, A, height=2))
    ev = hvs.add_vote(signed(0, B, round=0))
    assert isinstance(ev, DuplicateVoteEvidence)
