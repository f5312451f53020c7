"""Commit encoding, hashing and verification."""

from __future__ import annotations

import pytest
import rlp

from cybermiles.consensus.commit import Commit, InvalidCommit, MalformedCommit
from cybermiles.consensus.proposer import ValidatorSet
from cybermiles.consensus.signing import sign_vote
from cybermiles.consensus.types import Validator, Vote, VoteType
from cybermiles.crypto import ed25519
from cybermiles.crypto.keccak import keccak256

CHAIN = 1234
KEYS = [ed25519.private_key_from_seed(bytes([i + 1]) * 32) for i in range(5)]
ADDRS = [bytes([0xC0 - i]) * 20 for i in range(5)]  # descending, to exercise sorting
BLOCK = b"\x42" * 32
VSET = ValidatorSet.from_validators(
    Validator(ADDRS[i], ed25519.public_key_bytes(KEYS[i]), p) for i, p in enumerate([1, 1, 1, 1])
)


def sig(
    i: int,
    *,
    block: bytes | None = BLOCK,
    height: int = 7,
    round: int = 1,
    type: VoteType = VoteType.PRECOMMIT,
    chain: int = CHAIN,
) -> tuple[bytes, bytes]:
    vote = sign_vote(KEYS[i], chain, Vote(type, height, round, block, ADDRS[i]))
    return ADDRS[i], vote.signature


def commit(*signers: int, **kw: object) -> Commit:
    return Commit(7, 1, BLOCK, tuple(sig(i, **kw) for i in signers))  # type: ignore[arg-type]


def test_valid_commit() -> None:
    c = commit(0, 1, 2)
    c.verify(CHAIN, VSET)
    c.verify(CHAIN, VSET, height=7, block_hash=BLOCK)
    assert c.signers() == {ADDRS[0], ADDRS[1], ADDRS[2]}
    assert [a for a, _ in c.signatures] == sorted(ADDRS[:3])
    commit(0, 1, 2, 3).verify(CHAIN, VSET)


def test_encoding_roundtrip_and_hash() -> None:
    c = commit(2, 0, 1)
    data = c.encode()
    assert data == rlp.encode([7, 1, BLOCK, [list(p) for p in sorted(c.signatures)]])
    assert Commit.decode(data) == c
    assert c.hash() == keccak256(data)
    assert commit(0, 1, 2).hash() == c.hash()  # order of construction does not matter
    assert commit(0, 1, 3).hash() != c.hash()


def test_decode_rejects_non_canonical() -> None:
    c = commit(0, 1, 2)
    unsorted = rlp.encode([7, 1, BLOCK, [list(p) for p in reversed(c.signatures)]])
    with pytest.raises(MalformedCommit, match="ascending"):
        Commit.decode(unsorted)
    dup = rlp.encode([7, 1, BLOCK, [list(c.signatures[0])] * 2])
    with pytest.raises(MalformedCommit):
        Commit.decode(dup)
    for bad in (
        b"",
        b"\xff",
        rlp.encode([7, 1, b"short", []]),
        rlp.encode([7, 1, BLOCK]),
        rlp.encode([7, 1, BLOCK, [[b"a"]]]),
        rlp.encode([[], 1, BLOCK, []]),
    ):
        with pytest.raises(MalformedCommit):
            Commit.decode(bad)


def test_insufficient_power() -> None:
    with pytest.raises(InvalidCommit, match="insufficient voting power: got 2 of 4"):
        commit(0, 1).verify(CHAIN, VSET)
    with pytest.raises(InvalidCommit, match="no signatures"):
        Commit(7, 1, BLOCK, ()).verify(CHAIN, VSET)


def test_bad_signatures_and_signers() -> None:
    with pytest.raises(InvalidCommit, match="duplicate"):
        Commit(7, 1, BLOCK, (sig(0), sig(0), sig(1), sig(2))).verify(CHAIN, VSET)
    with pytest.raises(InvalidCommit, match="not a validator"):
        commit(0, 1, 2, 4).verify(CHAIN, VSET)
    with pytest.raises(InvalidCommit, match="invalid precommit signature"):
        Commit(7, 1, BLOCK, (sig(0), sig(1), sig(2, chain=19))).verify(CHAIN, VSET)
    # Signatures of prevotes, another round, another height or nil do not count.
    for kw in ({"type": VoteType.PREVOTE}, {"round": 0}, {"height": 8}, {"block": None}):
        with pytest.raises(InvalidCommit, match="invalid precommit signature"):
            Commit(7, 1, BLOCK, (sig(0), sig(1), sig(2, **kw))).verify(CHAIN, VSET)
    with pytest.raises(InvalidCommit, match="signature"):
        commit(0, 1, 2).verify(19, VSET)


def test_expected_height_and_block() -> None:
    c = commit(0, 1, 2)
    with pytest.raises(InvalidCommit, match="height 7, expected 8"):
        c.verify(CHAIN, VSET, height=8)
    with pytest.raises(InvalidCommit, match="expected"):
        c.verify(CHAIN, VSET, block_hash=b"\x00" * 32)


def test_weighted_commit() -> None:
    vset = ValidatorSet.from_validators(
        Validator(ADDRS[i], ed25519.public_key_bytes(KEYS[i]), p)
        for i, p in enumerate([70, 10, 10, 10])
    )
    commit(0).verify(CHAIN, vset)  # 70 of 100
    with pytest.raises(InvalidCommit):
        commit(1, 2, 3).verify(CHAIN, vset)
