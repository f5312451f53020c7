"""Wire messages of the consensus reactor and its WAL records.

P2P channels (one byte each, see :mod:`cybermiles.p2p.switch`)::

    STATE_CHANNEL      0x20  Status                      (small, periodic)
    PROPOSAL_CHANNEL   0x21  ProposalMessage             (proposal + the whole block)
    VOTE_CHANNEL       0x22  VoteMessage                 (one signed prevote/precommit)
    EVIDENCE_CHANNEL   0x23  EvidenceMessage             (duplicate-vote evidence, small)
    BLOCKSYNC_CHANNEL  0x40  BlockRequest / BlockResponse / NoBlock

Every payload is ``tag (1 byte) || RLP body`` (integers minimal big endian, as everywhere):

========  ================  ===========================================================
tag       message           RLP body
========  ================  ===========================================================
0x01      Status            ``[height, round, step, app_height, proposals, votes]``;
                            ``proposals`` = ``[[round, block_hash], ...]`` (what the
                            sender holds for ``height``), ``votes`` =
                            ``[[round, type, bitmap], ...]``: bit ``i`` (byte ``i // 8``,
                            bit ``i % 8``, least significant first) = the sender has the
                            vote of validator ``i`` (index in the height's set, sorted
                            by address)
0x02      ProposalMessage   ``[encode_proposal(p), block]`` (a block is opaque bytes)
0x03      VoteMessage       ``encode_vote(v)``
0x04      BlockRequest      ``[height]``
0x05      BlockResponse     ``[height, block, Commit.encode()]``
0x06      NoBlock           ``[height]``
0x07      EvidenceMessage   ``DuplicateVoteEvidence.encode()`` = ``[encode_vote(vote_a),
                            encode_vote(vote_b)]``, the same bytes a block carries in its
                            evidence list; the decoder insists on that exact (canonical)
                            encoding
========  ================  ===========================================================

``Status`` is CometBFT's ``NewRoundStep`` + ``HasVote`` + ``VoteSetBits`` folded into one
message: a peer answers it by sending the proposals and votes the sender lacks.

WAL records (payloads of :meth:`cybermiles.consensus.wal.WAL.write`), same framing:

========  ==========  ================================================================
tag       record      RLP body
========  ==========  ================================================================
0x01      vote        ``encode_vote(v)`` (a peer's vote, or our own signed one)
0x02      proposal    ``[encode_proposal(p), valid]`` (``valid`` 0/1: the verdict fed)
0x03      block part  ``[block_hash, index, count, data]`` (blocks are split so that
                      every record stays below ``wal.MAX_PAYLOAD_SIZE``)
0x04      timeout     ``[height, round, step]``
0x05      value       ``[height, round, block_hash]`` (our ``ValueEvent``)
========  ==========  ================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp

from cybermiles.consensus.commit import Commit, MalformedCommit
from cybermiles.consensus.events import TimeoutEvent, ValueEvent
from cybermiles.consensus.signing import (
    MalformedMessage,
    decode_proposal,
    decode_vote,
    encode_proposal,
    encode_vote,
    field_bytes,
    field_uint,
)
from cybermiles.consensus.types import Proposal, Step, Vote, VoteType
from cybermiles.consensus.votes import DuplicateVoteEvidence

__all__ = [
    "BLOCKSYNC_CHANNEL",
    "EVIDENCE_CHANNEL",
    "PROPOSAL_CHANNEL",
    "STATE_CHANNEL",
    "VOTE_CHANNEL",
    "WAL_BLOCK_PART_SIZE",
    "BlockPart",
    "BlockRequest",
    "BlockResponse",
    "EvidenceMessage",
    "MalformedMessage",
    "NoBlock",
    "ProposalMessage",
    "ProposalRecord",
    "Status",
    "VoteBits",
    "VoteMessage",
    "bitmap",
    "decode_blocksync",
    "decode_evidence_message",
    "decode_proposal_message",
    "decode_status",
    "decode_vote_message",
    "decode_wal_record",
    "encode_message",
    "encode_wal_block",
    "encode_wal_proposal",
    "encode_wal_timeout",
    "encode_wal_value",
    "encode_wal_vote",
    "has_bit",
]

STATE_CHANNEL = 0x20
PROPOSAL_CHANNEL = 0x21
VOTE_CHANNEL = 0x22
EVIDENCE_CHANNEL = 0x23
BLOCKSYNC_CHANNEL = 0x40

_STATUS, _PROPOSAL, _VOTE, _BLOCK_REQUEST, _BLOCK_RESPONSE, _NO_BLOCK = 1, 2, 3, 4, 5, 6
_EVIDENCE = 7
_W_VOTE, _W_PROPOSAL, _W_BLOCK_PART, _W_TIMEOUT, _W_VALUE = 1, 2, 3, 4, 5

#: Data bytes per WAL block-part record (well below ``wal.MAX_PAYLOAD_SIZE``).
WAL_BLOCK_PART_SIZE = 512 * 1024
#: Limits on what a Status may list (a peer listing more is misbehaving).
MAX_STATUS_ENTRIES = 1024
MAX_BITMAP_BYTES = 1024
HASH_SIZE = 32


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VoteBits:
    round: int
    type: VoteType
    bits: bytes


@dataclass(frozen=True, slots=True)
class Status:
    height: int  # the height the sender runs consensus on
    round: int
    step: Step
    app_height: int  # the sender's last committed block (what it can serve to block sync)
    proposals: tuple[tuple[int, bytes], ...] = ()
    votes: tuple[VoteBits, ...] = ()


@dataclass(frozen=True, slots=True)
class ProposalMessage:
    proposal: Proposal
    block: bytes


@dataclass(frozen=True, slots=True)
class VoteMessage:
    vote: Vote


@dataclass(frozen=True, slots=True)
class BlockRequest:
    height: int


@dataclass(frozen=True, slots=True)
class BlockResponse:
    height: int
    block: bytes
    commit: Commit


@dataclass(frozen=True, slots=True)
class NoBlock:
    height: int


@dataclass(frozen=True, slots=True)
class EvidenceMessage:
    evidence: DuplicateVoteEvidence


Message = (
    Status
    | ProposalMessage
    | VoteMessage
    | BlockRequest
    | BlockResponse
    | NoBlock
    | EvidenceMessage
)


def bitmap(indices: list[int] | set[int]) -> bytes:
    """The bitmap with the bits of ``indices`` set (least significant bit first)."""
    if not indices:
        return b""
    out = bytearray(max(indices) // 8 + 1)
    for i in indices:
        out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def has_bit(bits: bytes, index: int) -> bool:
    byte = index // 8
    return byte < len(bits) and bool(bits[byte] >> (index % 8) & 1)


def encode_message(message: Message) -> bytes:
    """``tag || RLP body`` of a wire message (see the module docstring)."""
    if isinstance(message, Status):
        body: object = [
            message.height,
            message.round,
            int(message.step),
            message.app_height,
            [[r, h] for r, h in message.proposals],
            [[vb.round, int(vb.type), vb.bits] for vb in message.votes],
        ]
        tag = _STATUS
    elif isinstance(message, ProposalMessage):
        body, tag = [encode_proposal(message.proposal), message.block], _PROPOSAL
    elif isinstance(message, VoteMessage):
        return bytes([_VOTE]) + encode_vote(message.vote)
    elif isinstance(message, EvidenceMessage):
        return bytes([_EVIDENCE]) + message.evidence.encode()
    elif isinstance(message, BlockRequest):
        body, tag = [message.height], _BLOCK_REQUEST
    elif isinstance(message, BlockResponse):
        body = [message.height, message.block, message.commit.encode()]
        tag = _BLOCK_RESPONSE
    elif isinstance(message, NoBlock):
        body, tag = [message.height], _NO_BLOCK
    else:
        raise TypeError(f"not a reactor message: {message!r}")
    return bytes([tag]) + rlp.encode(body)


# --- decoding helpers ------------------------------------------------------------------------


def _list(item: object, length: int | None, what: str) -> list[object]:
    if not isinstance(item, list) or (length is not None and len(item) != length):
        n = "" if length is None else f" of {length} items"
        raise MalformedMessage(f"{what} must be an RLP list{n}")
    return item


def _split(data: bytes, what: str) -> tuple[int, bytes]:
    if not data:
        raise MalformedMessage(f"empty {what}")
    return data[0], data[1:]


def _rlp(body: bytes, what: str) -> object:
    try:
        return rlp.decode(body, strict=True)
    except rlp.exceptions.DecodingError as e:
        raise MalformedMessage(f"malformed {what} RLP: {e}") from e


def _step(value: int) -> Step:
    if value not in (Step.PROPOSE, Step.PREVOTE, Step.PRECOMMIT):
        raise MalformedMessage(f"unknown step {value}")
    return Step(value)


def _vote_type(value: int) -> VoteType:
    if value not in (VoteType.PREVOTE, VoteType.PRECOMMIT):
        raise MalformedMessage(f"unknown vote type {value}")
    return VoteType(value)


def _hash(item: object, what: str) -> bytes:
    value = field_bytes(item, what)
    if len(value) != HASH_SIZE:
        raise MalformedMessage(f"{what} must be {HASH_SIZE} bytes")
    return value


# --- decoding, one function per channel ------------------------------------------------------


def decode_status(data: bytes) -> Status:
    """Decode a STATE_CHANNEL payload.

    Raises
    ------
    MalformedMessage
        Unknown tag, bad RLP, wrong shapes, or lists above the limits.
    """
    tag, body = _split(data, "status")
    if tag != _STATUS:
        raise MalformedMessage(f"unexpected message {tag} on the state channel")
    items = _list(_rlp(body, "status"), 6, "status")
    raw_props = _list(items[4], None, "status proposals")
    raw_votes = _list(items[5], None, "status votes")
    if len(raw_props) > MAX_STATUS_ENTRIES or len(raw_votes) > MAX_STATUS_ENTRIES:
        raise MalformedMessage("status lists too many entries")
    proposals = []
    for entry in raw_props:
        pair = _list(entry, 2, "status proposal")
        proposals.append((field_uint(pair[0], "proposal round"), _hash(pair[1], "proposal hash")))
    votes = []
    for entry in raw_votes:
        triple = _list(entry, 3, "status vote bits")
        bits = field_bytes(triple[2], "vote bitmap")
        if len(bits) > MAX_BITMAP_BYTES:
            raise MalformedMessage("vote bitmap too long")
        votes.append(
            VoteBits(
                field_uint(triple[0], "vote bits round"),
                _vote_type(field_uint(triple[1], "vote bits type")),
                bits,
            )
        )
    return Status(
        height=field_uint(items[0], "status height"),
        round=field_uint(items[1], "status round"),
        step=_step(field_uint(items[2], "status step")),
        app_height=field_uint(items[3], "status app height"),
        proposals=tuple(proposals),
        votes=tuple(votes),
    )


def decode_proposal_message(data: bytes, max_block_bytes: int) -> ProposalMessage:
    """Decode a PROPOSAL_CHANNEL payload (shapes only; the signature is checked later).

    Raises
    ------
    MalformedMessage
        Unknown tag, bad RLP, a malformed proposal, or an empty or oversized block.
    """
    tag, body = _split(data, "proposal message")
    if tag != _PROPOSAL:
        raise MalformedMessage(f"unexpected message {tag} on the proposal channel")
    items = _list(_rlp(body, "proposal message"), 2, "proposal message")
    proposal = decode_proposal(field_bytes(items[0], "proposal"))
    block = field_bytes(items[1], "block")
    if not block or len(block) > max_block_bytes:
        raise MalformedMessage(f"block of {len(block)} bytes (limit {max_block_bytes})")
    return ProposalMessage(proposal, block)


def decode_vote_message(data: bytes) -> VoteMessage:
    """Decode a VOTE_CHANNEL payload (shapes only).

    Raises
    ------
    MalformedMessage
        Unknown tag or a malformed vote.
    """
    tag, body = _split(data, "vote message")
    if tag != _VOTE:
        raise MalformedMessage(f"unexpected message {tag} on the vote channel")
    return VoteMessage(decode_vote(body))


def decode_blocksync(data: bytes, max_block_bytes: int) -> BlockRequest | BlockResponse | NoBlock:
    """Decode a BLOCKSYNC_CHANNEL payload.

    Raises
    ------
    MalformedMessage
        Unknown tag, bad RLP, a malformed commit, or an empty or oversized block.
    """
    tag, body = _split(data, "block sync message")
    if tag in (_BLOCK_REQUEST, _NO_BLOCK):
        items = _list(_rlp(body, "block sync message"), 1, "block sync message")
        height = field_uint(items[0], "height")
        if height < 1:
            raise MalformedMessage("block sync height must be >= 1")
        return BlockRequest(height) if tag == _BLOCK_REQUEST else NoBlock(height)
    if tag != _BLOCK_RESPONSE:
        raise MalformedMessage(f"unexpected message {tag} on the block sync channel")
    items = _list(_rlp(body, "block response"), 3, "block response")
    height = field_uint(items[0], "height")
    block = field_bytes(items[1], "block")
    if not block or len(block) > max_block_bytes:
        raise MalformedMessage(f"block of {len(block)} bytes (limit {max_block_bytes})")
    try:
        commit = Commit.decode(field_bytes(items[2], "commit"))
    except MalformedCommit as e:
        raise MalformedMessage(f"malformed commit: {e}") from e
    return BlockResponse(height, block, commit)


def decode_evidence_message(data: bytes) -> EvidenceMessage:
    """Decode an EVIDENCE_CHANNEL payload (shapes only; ``evidence.verify`` checks the rest).

    Raises
    ------
    MalformedMessage
        Unknown tag, bad RLP, not a list of two encoded votes, a malformed vote, or an encoding
        other than the canonical ``DuplicateVoteEvidence.encode()`` of the decoded votes.
    """
    tag, body = _split(data, "evidence message")
    if tag != _EVIDENCE:
        raise MalformedMessage(f"unexpected message {tag} on the evidence channel")
    items = _list(_rlp(body, "evidence"), 2, "evidence")
    evidence = DuplicateVoteEvidence(
        decode_vote(field_bytes(items[0], "evidence vote_a")),
        decode_vote(field_bytes(items[1], "evidence vote_b")),
    )
    if evidence.encode() != body:
        raise MalformedMessage("evidence encoding is not canonical")
    return EvidenceMessage(evidence)


# --- WAL records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    proposal: Proposal
    valid: bool


@dataclass(frozen=True, slots=True)
class BlockPart:
    block_hash: bytes
    index: int
    count: int
    data: bytes


WALEntry = Vote | ProposalRecord | BlockPart | TimeoutEvent | ValueEvent


def encode_wal_vote(vote: Vote) -> bytes:
    return bytes([_W_VOTE]) + encode_vote(vote)


def encode_wal_proposal(proposal: Proposal, valid: bool) -> bytes:
    return bytes([_W_PROPOSAL]) + rlp.encode([encode_proposal(proposal), int(valid)])


def encode_wal_block(block_hash: bytes, block: bytes) -> list[bytes]:
    """The block-part records of ``block`` (at least one)."""
    size = WAL_BLOCK_PART_SIZE
    pieces = [block[i : i + size] for i in range(0, len(block), size)] or [b""]
    return [
        bytes([_W_BLOCK_PART]) + rlp.encode([block_hash, i, len(pieces), piece])
        for i, piece in enumerate(pieces)
    ]


def encode_wal_timeout(event: TimeoutEvent) -> bytes:
    return bytes([_W_TIMEOUT]) + rlp.encode([event.height, event.round, int(event.step)])


def encode_wal_value(event: ValueEvent) -> bytes:
    return bytes([_W_VALUE]) + rlp.encode([event.height, event.round, event.block_hash])


def decode_wal_record(data: bytes) -> WALEntry:
    """Inverse of the ``encode_wal_*`` functions.

    Raises
    ------
    MalformedMessage
        A record this module did not write.
    """
    tag, body = _split(data, "WAL record")
    if tag == _W_VOTE:
        return decode_vote(body)
    items = _list(_rlp(body, "WAL record"), None, "WAL record")
    if tag == _W_PROPOSAL and len(items) == 2:
        return ProposalRecord(
            decode_proposal(field_bytes(items[0], "proposal")), bool(field_uint(items[1], "valid"))
        )
    if tag == _W_BLOCK_PART and len(items) == 4:
        return BlockPart(
            _hash(items[0], "block hash"),
            field_uint(items[1], "part index"),
            field_uint(items[2], "part count"),
            field_bytes(items[3], "part data"),
        )
    if tag == _W_TIMEOUT and len(items) == 3:
        return TimeoutEvent(
            field_uint(items[0], "height"),
            field_uint(items[1], "round"),
            _step(field_uint(items[2], "step")),
        )
    if tag == _W_VALUE and len(items) == 3:
        return ValueEvent(
            field_uint(items[0], "height"), field_uint(items[1], "round"), _hash(items[2], "hash")
        )
    raise MalformedMessage(f"unknown WAL record {tag} with {len(items)} items")
