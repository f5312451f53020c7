"""Wire messages and WAL records of the reactor: round trips and rejection of malformed input."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
import rlp
from hypothesis import given
from hypothesis import strategies as st

from cybermiles.consensus.commit import Commit
from cybermiles.consensus.events import TimeoutEvent, ValueEvent
from cybermiles.consensus.messages import (
    WAL_BLOCK_PART_SIZE,
    BlockPart,
    BlockRequest,
    BlockResponse,
    EvidenceMessage,
    MalformedMessage,
    NoBlock,
    ProposalMessage,
    ProposalRecord,
    Status,
    VoteBits,
    VoteMessage,
    bitmap,
    decode_blocksync,
    decode_evidence_message,
    decode_proposal_message,
    decode_status,
    decode_vote_message,
    decode_wal_record,
    encode_message,
    encode_wal_block,
    encode_wal_proposal,
    encode_wal_timeout,
    encode_wal_value,
    encode_wal_vote,
    has_bit,
)
from cybermiles.consensus.reactor import EVIDENCE_MESSAGE_SIZE
from cybermiles.consensus.signing import encode_vote
from cybermiles.consensus.types import Proposal, Step, Vote, VoteType
from cybermiles.consensus.votes import DuplicateVoteEvidence
from cybermiles.consensus.wal import MAX_PAYLOAD_SIZE

H = hashlib.sha256(b"block").digest()
ADDR = bytes(19) + b"\x01"
VOTE = Vote(VoteType.PRECOMMIT, 7, 2, H, ADDR, b"\x05" * 64)
NIL_VOTE = Vote(VoteType.PREVOTE, 7, 0, None, ADDR, b"\x06" * 64)
PROPOSAL = Proposal(7, 2, H, 1, ADDR, b"\x07" * 64)
COMMIT = Commit(7, 2, H, ((ADDR, b"\x05" * 64),))
EVIDENCE = DuplicateVoteEvidence.from_votes(
    VOTE, Vote(VoteType.PRECOMMIT, 7, 2, None, ADDR, b"\x08" * 64)
)
LIMIT = 1 << 20


def test_wire_messages_round_trip() -> None:
    status = Status(
        7, 2, Step.PRECOMMIT, 6, ((0, H), (2, H)), (VoteBits(2, VoteType.PREVOTE, b"\x0b"),)
    )
    assert decode_status(encode_message(status)) == status
    assert decode_status(encode_message(Status(1, 0, Step.PROPOSE, 0))) == Status(
        1, 0, Step.PROPOSE, 0
    )
    message = ProposalMessage(PROPOSAL, b"block bytes")
    assert decode_proposal_message(encode_message(message), LIMIT) == message
    for vote in (VOTE, NIL_VOTE):
        assert decode_vote_message(encode_message(VoteMessage(vote))) == VoteMessage(vote)
    for sync in (BlockRequest(3), NoBlock(3), BlockResponse(7, b"blk", COMMIT)):
        assert decode_blocksync(encode_message(sync), LIMIT) == sync


def test_evidence_message_round_trips_as_the_block_encoding() -> None:
    payload = encode_message(EvidenceMessage(EVIDENCE))
    assert payload == b"\x07" + EVIDENCE.encode()  # one encoding: the one blocks carry
    assert len(payload) <= EVIDENCE_MESSAGE_SIZE
    decoded = decode_evidence_message(payload)
    assert decoded == EvidenceMessage(EVIDENCE)
    assert decoded.evidence.hash() == EVIDENCE.hash()
    # Shapes only: a non-canonical vote order decodes (``verify`` rejects it later).
    swapped = DuplicateVoteEvidence(EVIDENCE.vote_b, EVIDENCE.vote_a)
    assert decode_evidence_message(encode_message(EvidenceMessage(swapped))).evidence == swapped


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x07",
        b"\x03" + EVIDENCE.encode(),  # evidence tagged as a vote
        b"\x07\xff\xff",  # not RLP
        b"\x07" + EVIDENCE.encode() + b"\x00",  # trailing bytes
        b"\x07" + rlp.encode([encode_vote(VOTE)]),  # one vote
        b"\x07" + rlp.encode([encode_vote(VOTE)] * 3),  # three votes
        b"\x07" + rlp.encode([[encode_vote(VOTE)], encode_vote(VOTE)]),  # a list, not a vote
        b"\x07" + rlp.encode([b"junk", encode_vote(VOTE)]),  # not a vote
        b"\x07" + rlp.encode(b"a string"),
    ],
)
def test_malformed_evidence_message_is_rejected(payload: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_evidence_message(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x02" + encode_message(VoteMessage(VOTE))[1:],  # a vote tagged as a status
        b"\x01\xff\xff",
        b"\x01" + rlp.encode([1, 0, 9, 0, [], []]),  # unknown step
        b"\x01" + rlp.encode([1, 0, 0, 0, [[0, b"short"]], []]),  # hash not 32 bytes
        b"\x01" + rlp.encode([1, 0, 0, 0, [], [[0, 3, b""]]]),  # unknown vote type
        b"\x01" + rlp.encode([1, 0, 0, 0, [], [[0, 1, b"\xff" * 2000]]]),  # huge bitmap
        b"\x01" + rlp.encode([1, 0, 0, 0]),  # too few items
    ],
)
def test_malformed_status_is_rejected(payload: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_status(payload)


def test_malformed_proposals_votes_and_sync_messages_are_rejected() -> None:
    bad_proposals = [
        b"\x03" + rlp.encode([b"", b""]),
        b"\x02" + rlp.encode([b"junk", b"block"]),
        encode_message(ProposalMessage(PROPOSAL, b"")),  # empty block
        encode_message(ProposalMessage(PROPOSAL, b"x" * 11)),  # over the limit below
    ]
    for payload in bad_proposals:
        with pytest.raises(MalformedMessage):
            decode_proposal_message(payload, 10)
    for payload in (b"\x03", b"\x03\xc0", b"\x01" + encode_message(VoteMessage(VOTE))[1:]):
        with pytest.raises(MalformedMessage):
            decode_vote_message(payload)
    bad_sync = [
        b"\x04" + rlp.encode([0]),  # height 0
        b"\x05" + rlp.encode([1, b"blk", b"not a commit"]),
        b"\x07" + rlp.encode([1]),
        b"\x05" + rlp.encode([1, b"", COMMIT.encode()]),
    ]
    for payload in bad_sync:
        with pytest.raises(MalformedMessage):
            decode_blocksync(payload, LIMIT)


@given(st.binary(max_size=200))
def test_decoders_raise_only_malformed_message(data: bytes) -> None:
    for decode in (
        decode_status,
        decode_vote_message,
        lambda d: decode_proposal_message(d, LIMIT),
        lambda d: decode_blocksync(d, LIMIT),
        decode_evidence_message,
        decode_wal_record,
    ):
        with contextlib.suppress(MalformedMessage):
            decode(data)


def test_wal_records_round_trip_and_fit_the_wal() -> None:
    assert decode_wal_record(encode_wal_vote(VOTE)) == VOTE
    assert decode_wal_record(encode_wal_proposal(PROPOSAL, False)) == ProposalRecord(
        PROPOSAL, False
    )
    timeout = TimeoutEvent(7, 3, Step.PREVOTE)
    assert decode_wal_record(encode_wal_timeout(timeout)) == timeout
    value = ValueEvent(7, 3, H)
    assert decode_wal_record(encode_wal_value(value)) == value
    block = bytes(range(256)) * (3 * WAL_BLOCK_PART_SIZE // 256 + 5)
    parts = [decode_wal_record(r) for r in encode_wal_block(H, block)]
    assert all(isinstance(p, BlockPart) for p in parts)
    assert [p.index for p in parts] == [0, 1, 2, 3] and {p.count for p in parts} == {4}
    assert b"".join(p.data for p in parts) == block
    assert all(len(r) <= MAX_PAYLOAD_SIZE for r in encode_wal_block(H, block))


def test_bitmaps() -> None:
    bits = bitmap({0, 3, 9})
    assert bits == b"\x09\x02"
    assert [i for i in range(16) if has_bit(bits, i)] == [0, 3, 9]
    assert bitmap(set()) == b"" and not has_bit(b"", 0)
