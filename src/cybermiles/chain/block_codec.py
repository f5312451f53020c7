"""The network encoding of a block: header, raw transactions and consensus data.

RLP ``[header, [raw_tx, ...], last_commit, [evidence, ...], beacon_reveal]`` where ``header``
is the header's RLP list (as in Ethereum), each ``raw_tx`` the signed transaction bytes (typed
transactions as their EIP-2718 bytes), ``last_commit`` the canonical encoding of the previous
block's commit (``b""`` at height 1), each ``evidence`` the encoding of a duplicate-vote
evidence, and ``beacon_reveal`` opaque bytes (may be empty) for the random beacon. The block's
hash is its header hash; the header's ``extraData`` is ``keccak256(last_commit)`` (empty at
height 1), so the header commits to the commit.

This module only shapes bytes; the consensus layer decodes and verifies the commit and the
evidence, the transaction decoder the transactions.
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp

from cybermiles.chain.errors import ChainError
from cybermiles.chain.header import Header, header_hash

__all__ = [
    "MAX_BLOCK_BYTES",
    "MalformedBlock",
    "NetBlock",
    "decode_consensus_data",
    "encode_consensus_data",
]

MAX_BLOCK_BYTES = 64 * 1024 * 1024  # refuse to even parse anything larger


class MalformedBlock(ChainError):
    """Bytes that are not a block encoding."""


@dataclass(frozen=True, slots=True)
class NetBlock:
    header: Header
    raw_txs: tuple[bytes, ...]
    last_commit: bytes  # canonical commit encoding, b"" at height 1
    evidence: tuple[bytes, ...]  # duplicate-vote evidence encodings
    beacon_reveal: bytes

    @property
    def hash(self) -> bytes:
        return header_hash(self.header)

    def encode(self) -> bytes:
        return rlp.encode(
            [
                self.header,
                list(self.raw_txs),
                self.last_commit,
                list(self.evidence),
                self.beacon_reveal,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> NetBlock:
        """Inverse of :meth:`encode` (shapes only).

        Raises
        ------
        MalformedBlock
            Oversized, bad RLP, wrong shapes, or a header that does not decode.
        """
        if not isinstance(data, bytes):
            raise MalformedBlock("block must be bytes")
        if len(data) > MAX_BLOCK_BYTES:
            raise MalformedBlock(f"block of {len(data)} bytes exceeds {MAX_BLOCK_BYTES}")
        try:
            items = rlp.decode(data)
        except rlp.exceptions.DecodingError as e:
            raise MalformedBlock(f"malformed block RLP: {e}") from e
        if not isinstance(items, list) or len(items) != 5:
            raise MalformedBlock("block must be an RLP list of 5 items")
        raw_header, raw_txs, last_commit, evidence, reveal = items
        if not isinstance(raw_header, list):
            raise MalformedBlock("block header must be an RLP list")
        try:
            header = Header.deserialize(raw_header)
        except (rlp.exceptions.DeserializationError, rlp.exceptions.RLPException) as e:
            raise MalformedBlock(f"malformed block header: {e}") from e
        for name, seq in (("transactions", raw_txs), ("evidence", evidence)):
            if not isinstance(seq, list) or not all(isinstance(x, bytes) for x in seq):
                raise MalformedBlock(f"block {name} must be a list of byte strings")
        if not isinstance(last_commit, bytes) or not isinstance(reveal, bytes):
            raise MalformedBlock("block last_commit and beacon_reveal must be byte strings")
        block = cls(header, tuple(raw_txs), last_commit, tuple(evidence), reveal)
        if block.encode() != data:
            raise MalformedBlock("block encoding is not canonical")
        return block


def encode_consensus_data(last_commit: bytes, evidence: tuple[bytes, ...], reveal: bytes) -> bytes:
    """The ``consensus`` table value: RLP ``[last_commit, [evidence, ...], beacon_reveal]``."""
    return rlp.encode([last_commit, list(evidence), reveal])


def decode_consensus_data(data: bytes) -> tuple[bytes, tuple[bytes, ...], bytes]:
    """Inverse of :func:`encode_consensus_data`."""
    last_commit, evidence, reveal = rlp.decode(data)
    return last_commit, tuple(evidence), reveal
