"""Canonical sign bytes and Ed25519 signatures of votes and proposals."""

from __future__ import annotations

from dataclasses import replace

import pytest
import rlp

from cybermiles.consensus.signing import (
    MalformedMessage,
    decode_proposal,
    decode_vote,
    encode_proposal,
    encode_vote,
    proposal_sign_bytes,
    sign_proposal,
    sign_vote,
    verify_proposal,
    verify_vote,
    vote_sign_bytes,
)
from cybermiles.consensus.types import Proposal, Vote, VoteType
from cybermiles.crypto import ed25519

CHAIN = 1234
KEY = ed25519.private_key_from_seed(b"\x01" * 32)
PUB = ed25519.public_key_bytes(KEY)
OTHER = ed25519.private_key_from_seed(b"\x02" * 32)
BLOCK = b"\xab" * 32
ADDR = b"\x0a" * 20


def vote(block: bytes | None = BLOCK, **kw: object) -> Vote:
    fields = {"type": VoteType.PREVOTE, "height": 5, "round": 2, "block_hash": block}
    fields.update(kw)
    return Vote(validator=ADDR, **fields)  # type: ignore[arg-type]


def proposal(**kw: object) -> Proposal:
    fields = {"height": 5, "round": 2, "block_hash": BLOCK, "pol_round": -1, "proposer": ADDR}
    fields.update(kw)
    return Proposal(**fields)  # type: ignore[arg-type]


def test_vote_sign_bytes_layout() -> None:
    assert vote_sign_bytes(CHAIN, vote()) == rlp.encode([b"cybermiles/vote", CHAIN, 1, 5, 2, BLOCK])
    nil = vote(None, type=VoteType.PRECOMMIT)
    assert vote_sign_bytes(CHAIN, nil) == rlp.encode([b"cybermiles/vote", CHAIN, 2, 5, 2, b""])
    # Signature and validator are not signed.
    assert vote_sign_bytes(CHAIN, replace(vote(), validator=b"x", signature=b"y")) == (
        vote_sign_bytes(CHAIN, vote())
    )


def test_proposal_sign_bytes_layout() -> None:
    assert proposal_sign_bytes(CHAIN, proposal()) == rlp.encode(
        [b"cybermiles/proposal", CHAIN, 5, 2, BLOCK, 0]
    )
    assert proposal_sign_bytes(CHAIN, proposal(pol_round=1)) == rlp.encode(
        [b"cybermiles/proposal", CHAIN, 5, 2, BLOCK, 2]
    )


def test_sign_and_verify_vote() -> None:
    signed = sign_vote(KEY, CHAIN, vote())
    assert len(signed.signature) == 64
    assert verify_vote(PUB, CHAIN, signed)
    assert not verify_vote(PUB, CHAIN + 1, signed)  # bound to the chain
    assert not verify_vote(ed25519.public_key_bytes(OTHER), CHAIN, signed)
    for changed in (
        replace(signed, round=3),
        replace(signed, height=6),
        replace(signed, block_hash=None),
        replace(signed, type=VoteType.PRECOMMIT),
        replace(signed, signature=b"\x00" * 64),
        replace(signed, signature=b"short"),
    ):
        assert not verify_vote(PUB, CHAIN, changed)
    assert not verify_vote(b"bad key", CHAIN, signed)


def test_sign_and_verify_proposal() -> None:
    signed = sign_proposal(KEY, CHAIN, proposal(pol_round=1))
    assert verify_proposal(PUB, CHAIN, signed)
    assert not verify_proposal(PUB, CHAIN, replace(signed, pol_round=-1))
    assert not verify_proposal(PUB, 19, signed)


def test_domain_separation() -> None:
    # A vote signature never verifies as a proposal signature and vice versa.
    v = sign_vote(KEY, CHAIN, vote())
    p = proposal(signature=v.signature)
    assert not verify_proposal(PUB, CHAIN, p)


def test_malformed_fields_rejected() -> None:
    with pytest.raises(MalformedMessage):
        vote_sign_bytes(CHAIN, vote(b"short"))
    with pytest.raises(MalformedMessage):
        vote_sign_bytes(CHAIN, vote(height=0))
    with pytest.raises(MalformedMessage):
        proposal_sign_bytes(CHAIN, proposal(pol_round=2))  # not < round
    with pytest.raises(MalformedMessage):
        proposal_sign_bytes(CHAIN, proposal(pol_round=-2))
    assert not verify_vote(PUB, CHAIN, vote(b"short", signature=b"\x00" * 64))


def test_wire_roundtrip_and_errors() -> None:
    for v in (sign_vote(KEY, CHAIN, vote()), sign_vote(KEY, CHAIN, vote(None))):
        assert decode_vote(encode_vote(v)) == v
    p = sign_proposal(KEY, CHAIN, proposal(pol_round=0))
    assert decode_proposal(encode_proposal(p)) == p
    for bad in (b"", b"\xc0", rlp.encode([1, 2, 3]), rlp.encode([9, 5, 2, BLOCK, ADDR, b""])):
        with pytest.raises(MalformedMessage):
            decode_vote(bad)
    with pytest.raises(MalformedMessage):
        decode_proposal(rlp.encode([5, 2, b"x", 0, ADDR, b""]))
