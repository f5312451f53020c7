"""Canonical sign bytes of votes and proposals, and Ed25519 signing/verification of them.

What a validator signs (RLP; integers minimal big-endian, as everywhere in Ethereum):

* vote:     ``[b"cybermiles/vote", chain_id, type, height, round, block_hash or b""]``
  (``type`` 1 = prevote, 2 = precommit; ``b""`` is a vote for nil);
* proposal: ``[b"cybermiles/proposal", chain_id, height, round, block_hash, pol_round + 1]``
  (``pol_round`` is -1 without a proof of lock, so ``pol_round + 1`` keeps the field unsigned).

The domain tag keeps a vote signature from ever being valid as a proposal signature (or as any
other message) and ``chain_id`` binds it to one chain. The validator's address is not signed:
the key that verifies the signature is what identifies the signer. There are no timestamps, so
two votes with the same sign bytes are the same vote.

Wire encodings (:func:`encode_vote` / :func:`decode_vote` and the proposal pair) are the signed
fields plus the validator address and signature; evidence, commits and the WAL reuse them.
"""

from __future__ import annotations

from dataclasses import replace

import rlp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rlp.sedes import big_endian_int

from cybermiles.consensus.types import Proposal, Vote, VoteType
from cybermiles.crypto import ed25519

__all__ = [
    "PROPOSAL_DOMAIN",
    "VOTE_DOMAIN",
    "MalformedMessage",
    "decode_proposal",
    "decode_vote",
    "encode_proposal",
    "encode_vote",
    "field_bytes",
    "field_uint",
    "proposal_sign_bytes",
    "sign_proposal",
    "sign_vote",
    "verify_proposal",
    "verify_vote",
    "vote_sign_bytes",
]

VOTE_DOMAIN = b"cybermiles/vote"
PROPOSAL_DOMAIN = b"cybermiles/proposal"
HASH_SIZE = 32


class MalformedMessage(ValueError):
    """A vote or proposal whose fields (or encoding) cannot be valid."""


def _check_vote_fields(vote: Vote) -> None:
    if vote.type not in (VoteType.PREVOTE, VoteType.PRECOMMIT):
        raise MalformedMessage(f"unknown vote type {vote.type!r}")
    if vote.height < 1 or vote.round < 0:
        raise MalformedMessage(f"bad vote height/round {vote.height}/{vote.round}")
    if vote.block_hash is not None and len(vote.block_hash) != HASH_SIZE:
        raise MalformedMessage(f"vote block hash must be {HASH_SIZE} bytes or None")


def _check_proposal_fields(proposal: Proposal) -> None:
    if proposal.height < 1 or proposal.round < 0:
        raise MalformedMessage(f"bad proposal height/round {proposal.height}/{proposal.round}")
    if not -1 <= proposal.pol_round < proposal.round:
        raise MalformedMessage(
            f"proposal pol_round {proposal.pol_round} must be in -1..round-1 ({proposal.round})"
        )
    if len(proposal.block_hash) != HASH_SIZE:
        raise MalformedMessage(f"proposal block hash must be {HASH_SIZE} bytes")


def vote_sign_bytes(chain_id: int, vote: Vote) -> bytes:
    """The bytes a validator signs for ``vote`` (signature and validator not included).

    Raises
    ------
    MalformedMessage
        Unknown type, height < 1, round < 0, or a block hash that is not 32 bytes.
    """
    _check_vote_fields(vote)
    return rlp.encode(
        [VOTE_DOMAIN, chain_id, int(vote.type), vote.height, vote.round, vote.block_hash or b""]
    )


def proposal_sign_bytes(chain_id: int, proposal: Proposal) -> bytes:
    """The bytes a proposer signs for ``proposal`` (signature and proposer not included).

    Raises
    ------
    MalformedMessage
        height < 1, round < 0, pol_round outside -1..round-1, or a block hash not 32 bytes.
    """
    _check_proposal_fields(proposal)
    return rlp.encode(
        [
            PROPOSAL_DOMAIN,
            chain_id,
            proposal.height,
            proposal.round,
            proposal.block_hash,
            proposal.pol_round + 1,
        ]
    )


def sign_vote(key: Ed25519PrivateKey, chain_id: int, vote: Vote) -> Vote:
    """``vote`` with its signature by ``key`` (no double-sign protection: see ``privval``)."""
    return replace(vote, signature=ed25519.sign(key, vote_sign_bytes(chain_id, vote)))


def verify_vote(pub_key: bytes, chain_id: int, vote: Vote) -> bool:
    """Whether ``vote.signature`` is ``pub_key``'s signature of the vote on ``chain_id``."""
    try:
        message = vote_sign_bytes(chain_id, vote)
    except MalformedMessage:
        return False
    return ed25519.verify(pub_key, message, vote.signature)


def sign_proposal(key: Ed25519PrivateKey, chain_id: int, proposal: Proposal) -> Proposal:
    """``proposal`` with its signature by ``key`` (no double-sign protection)."""
    return replace(proposal, signature=ed25519.sign(key, proposal_sign_bytes(chain_id, proposal)))


def verify_proposal(pub_key: bytes, chain_id: int, proposal: Proposal) -> bool:
    """Whether ``proposal.signature`` is ``pub_key``'s signature of it on ``chain_id``."""
    try:
        message = proposal_sign_bytes(chain_id, proposal)
    except MalformedMessage:
        return False
    return ed25519.verify(pub_key, message, proposal.signature)


# --- wire encodings ------------------------------------------------------------------------


def field_uint(item: object, what: str) -> int:
    """A decoded RLP field that must be an unsigned integer (MalformedMessage otherwise)."""
    if not isinstance(item, bytes):
        raise MalformedMessage(f"{what} must be an RLP string")
    try:
        return big_endian_int.deserialize(item)
    except rlp.exceptions.DeserializationError as e:
        raise MalformedMessage(f"{what}: {e}") from e


def field_bytes(item: object, what: str) -> bytes:
    """A decoded RLP field that must be a string (MalformedMessage otherwise)."""
    if not isinstance(item, bytes):
        raise MalformedMessage(f"{what} must be an RLP string")
    return item


def _decode_list(data: bytes, length: int, what: str) -> list[object]:
    try:
        items = rlp.decode(data)
    except rlp.exceptions.DecodingError as e:
        raise MalformedMessage(f"malformed {what} RLP: {e}") from e
    if not isinstance(items, list) or len(items) != length:
        raise MalformedMessage(f"{what} must be an RLP list of {length} items")
    return items


def encode_vote(vote: Vote) -> bytes:
    """RLP ``[type, height, round, block_hash or b"", validator, signature]``."""
    return rlp.encode(
        [
            int(vote.type),
            vote.height,
            vote.round,
            vote.block_hash or b"",
            vote.validator,
            vote.signature,
        ]
    )


def decode_vote(data: bytes) -> Vote:
    """Inverse of :func:`encode_vote` (checks the field shapes, not the signature).

    Raises
    ------
    MalformedMessage
        Bad RLP, wrong item count, or fields that cannot form a vote.
    """
    items = _decode_list(data, 6, "vote")
    type_ = field_uint(items[0], "vote type")
    if type_ not in (VoteType.PREVOTE, VoteType.PRECOMMIT):
        raise MalformedMessage(f"unknown vote type {type_}")
    block_hash = field_bytes(items[3], "vote block hash")
    vote = Vote(
        type=VoteType(type_),
        height=field_uint(items[1], "vote height"),
        round=field_uint(items[2], "vote round"),
        block_hash=block_hash or None,
        validator=field_bytes(items[4], "vote validator"),
        signature=field_bytes(items[5], "vote signature"),
    )
    _check_vote_fields(vote)
    return vote


def encode_proposal(proposal: Proposal) -> bytes:
    """RLP ``[height, round, block_hash, pol_round + 1, proposer, signature]``."""
    return rlp.encode(
        [
            proposal.height,
            proposal.round,
            proposal.block_hash,
            proposal.pol_round + 1,
            proposal.proposer,
            proposal.signature,
        ]
    )


def decode_proposal(data: bytes) -> Proposal:
    """Inverse of :func:`encode_proposal` (checks the field shapes, not the signature).

    Raises
    ------
    MalformedMessage
        Bad RLP, wrong item count, or fields that cannot form a proposal.
    """
    items = _decode_list(data, 6, "proposal")
    proposal = Proposal(
        height=field_uint(items[0], "proposal height"),
        round=field_uint(items[1], "proposal round"),
        block_hash=field_bytes(items[2], "proposal block hash"),
        pol_round=field_uint(items[3], "proposal pol_round") - 1,
        proposer=field_bytes(items[4], "proposal proposer"),
        signature=field_bytes(items[5], "proposal signature"),
    )
    _check_proposal_fields(proposal)
    return proposal
