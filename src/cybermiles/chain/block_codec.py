"""The network encoding of a block: header, raw transactions and consensus data.

RLP ``[header, [raw_tx, ...], last_commit, [evidence, ...], beacon_reveal, round]`` where
``header`` is the header's RLP list (as in Ethereum), each ``raw_tx`` the signed transaction
bytes (typed transactions as their EIP-2718 bytes), ``last_commit`` the canonical encoding of
the previous block's commit (``b""`` at height 1), each ``evidence`` the encoding of a
duplicate-vote evidence, ``beacon_reveal`` the proposer's random-beacon reveal (32 bytes, or
empty when its proposer has no live commitment) and ``round`` (an RLP integer) the consensus
round the block was built for: the proposer of that round at the block's height is the
block's proposer, whose commitment the reveal opens (``docs/consensus.md``, "Random beacon").
The block's hash is its header hash; the header's ``extraData`` is ``keccak256(last_commit)``
(empty at height 1), so the header commits to the commit. The reveal and the round are not
in the header but are bound by it: the ``mixHash`` is the beacon they give and the state root
covers the proposer's consumed commitment.

This module only shapes bytes; the consensus layer decodes and verifies the commit and the
evidence, the transaction decoder the transactions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import rlp

from cybermiles.chain.errors import ChainError
from cybermiles.chain.header import Header, header_hash
from cybermiles.chain.rlp_codec import encode_bytes, encode_items, encode_uint

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
    beacon_reveal: bytes  # b"": no reveal (the proposer has no live commitment)
    round: int = 0  # the consensus round the block was proposed in (names its proposer)

    @property
    def hash(self) -> bytes:
        return header_hash(self.header)

    def encode(self) -> bytes:
        """The same bytes as ``rlp.encode([header, [raw_tx...], ...])``, built with the fast
        encoders of :mod:`cybermiles.chain.rlp_codec` (blocks hold thousands of txs)."""
        return encode_items(
            (
                rlp.encode(self.header),
                encode_items(map(encode_bytes, self.raw_txs)),
                encode_bytes(self.last_commit),
                encode_items(map(encode_bytes, self.evidence)),
                encode_bytes(self.beacon_reveal),
                encode_uint(self.round),
            )
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
        with _DECODED_LOCK:
            cached = _DECODED.get(data)
        if cached is not None:
            return cached
        block = cls._decode(data)
        with _DECODED_LOCK:
            _DECODED[data] = block
            while len(_DECODED) > _DECODED_MAX:
                del _DECODED[next(iter(_DECODED))]
        return block

    @classmethod
    def _decode(cls, data: bytes) -> NetBlock:
        items = _split_block(data)
        raw_header, raw_txs, last_commit, evidence, reveal, raw_round = items
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
        block = cls(
            header, tuple(raw_txs), last_commit, tuple(evidence), reveal, _decode_round(raw_round)
        )
        if block.encode() != data:
            raise MalformedBlock("block encoding is not canonical")
        return block


# The last blocks decoded (bytes -> NetBlock; both immutable): the reactor and the app decode the
# same proposal several times (check, commit, WAL). Bytes objects cache their hash.
_DECODED: dict[bytes, NetBlock] = {}
_DECODED_MAX = 4
_DECODED_LOCK = threading.Lock()


def _split_block(data: bytes) -> list[Any]:
    """The 6 items of a block's RLP: the header as a decoded RLP list (pyrlp), the transaction
    and evidence lists as lists of byte strings (a fast scanner: blocks hold thousands), the
    others as byte strings. Shapes only; ``decode`` re-encodes to insist on canonical bytes."""
    try:
        is_list, start, end = _item(data, 0)
        if not is_list or end != len(data):
            raise MalformedBlock("block must be one RLP list")
        spans = []
        pos = start
        while pos < end:
            is_list, item_start, item_end = _item(data, pos)
            spans.append((is_list, pos, item_start, item_end))
            pos = item_end
        if pos != end:
            raise MalformedBlock("block list overruns its payload")
        if len(spans) != 6:
            raise MalformedBlock("block must be an RLP list of 6 items")
        out: list[Any] = []
        for index, (is_list, item_pos, item_start, item_end) in enumerate(spans):
            if index == 0:
                out.append(rlp.decode(data[item_pos:item_end]))
            elif index in (1, 3):
                if not is_list:
                    raise MalformedBlock("block transactions/evidence must be an RLP list")
                out.append(_strings(data, item_start, item_end))
            else:
                out.append(data[item_start:item_end] if not is_list else [])
        return out
    except rlp.exceptions.DecodingError as e:
        raise MalformedBlock(f"malformed block RLP: {e}") from e
    except IndexError as e:
        raise MalformedBlock("truncated block RLP") from e


def _item(data: bytes, pos: int) -> tuple[bool, int, int]:
    """(is a list, payload start, item end) of the RLP item at ``pos``."""
    b = data[pos]
    if b < 0x80:
        return False, pos, pos + 1
    if b < 0xB8:
        start, length, is_list = pos + 1, b - 0x80, False
    elif b < 0xC0:
        n = b - 0xB7
        start, is_list = pos + 1 + n, False
        length = int.from_bytes(data[pos + 1 : start], "big")
    elif b < 0xF8:
        start, length, is_list = pos + 1, b - 0xC0, True
    else:
        n = b - 0xF7
        start, is_list = pos + 1 + n, True
        length = int.from_bytes(data[pos + 1 : start], "big")
    end = start + length
    if end > len(data):
        raise MalformedBlock("truncated block RLP")
    return is_list, start, end


def _strings(data: bytes, start: int, end: int) -> list[bytes]:
    """The byte strings of an RLP list payload ``data[start:end]``; a nested list is an error."""
    out = []
    pos = start
    while pos < end:
        is_list, item_start, item_end = _item(data, pos)
        if is_list:
            raise MalformedBlock("a list where a byte string was expected")
        out.append(data[item_start:item_end])
        pos = item_end
    if pos != end:
        raise MalformedBlock("list overruns its payload")
    return out


def _decode_round(raw: object) -> int:
    """An RLP integer (canonical: no leading zero byte) as the block's round."""
    if not isinstance(raw, bytes):
        raise MalformedBlock("block round must be an RLP integer")
    if raw[:1] == b"\x00":
        raise MalformedBlock("block round is not a canonical integer")
    if len(raw) > 8:
        raise MalformedBlock("block round does not fit in 64 bits")
    return int.from_bytes(raw, "big")


def encode_consensus_data(
    last_commit: bytes, evidence: tuple[bytes, ...], reveal: bytes, round: int = 0
) -> bytes:
    """The ``consensus`` table value: RLP ``[last_commit, [evidence, ...], beacon_reveal,
    round]``."""
    return rlp.encode([last_commit, list(evidence), reveal, round])


def decode_consensus_data(data: bytes) -> tuple[bytes, tuple[bytes, ...], bytes, int]:
    """Inverse of :func:`encode_consensus_data`: ``(last_commit, evidence, reveal, round)``.

    Values written before the round was stored (3 items) read as round 0."""
    items = rlp.decode(data)
    last_commit, evidence, reveal = items[:3]
    round = int.from_bytes(items[3], "big") if len(items) > 3 else 0
    return last_commit, tuple(evidence), reveal, round
