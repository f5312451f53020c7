"""Transaction receipts and logs in Ethereum's consensus encoding (EIP-658 status, EIP-2718 types).

Only consensus fields are stored; RPC derives per-transaction gas, contract address and effective
gas price from the receipt, the previous receipt and the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import rlp

from cybermiles.chain.rlp_codec import encode_bytes, encode_items, encode_list, encode_uint
from cybermiles.crypto.keccak import keccak256

EMPTY_BLOOM = b"\x00" * 256


@dataclass(frozen=True, slots=True)
class Log:
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_type: int
    status: int
    cumulative_gas_used: int
    logs: tuple[Log, ...]
    bloom: bytes

    def encode(self) -> bytes:
        """Consensus encoding: ``rlp(...)`` for legacy, ``type || rlp(...)`` for typed."""
        logs = encode_items(
            encode_list(
                encode_bytes(log.address)
                + encode_items(encode_bytes(topic) for topic in log.topics)
                + encode_bytes(log.data)
            )
            for log in self.logs
        )
        payload = encode_list(
            encode_uint(self.status)
            + encode_uint(self.cumulative_gas_used)
            + encode_bytes(self.bloom)
            + logs
        )
        return payload if self.tx_type == 0 else bytes([self.tx_type]) + payload


def decode_receipt(data: bytes) -> Receipt:
    tx_type = 0
    if data and data[0] < 0x7F:
        tx_type, data = data[0], data[1:]
    status, cumulative, bloom, logs = rlp.decode(data)
    return Receipt(
        tx_type,
        int.from_bytes(status, "big"),
        int.from_bytes(cumulative, "big"),
        tuple(Log(address, tuple(topics), log_data) for address, topics, log_data in logs),
        bloom,
    )


def bloom_bits(item: bytes) -> int:
    """The 3 bloom bits of ``item`` (Yellow Paper 4.3.1, M3:2048): for each of the first three
    byte pairs of keccak256(item), bit ``pair & 2047`` of the 2048-bit big-endian bloom."""
    h = keccak256(item)
    return (
        (1 << (((h[0] << 8) | h[1]) & 2047))
        | (1 << (((h[2] << 8) | h[3]) & 2047))
        | (1 << (((h[4] << 8) | h[5]) & 2047))
    )


def logs_bloom(logs: Iterable[Log]) -> bytes:
    """The 2048-bit bloom of the logs' addresses and topics (Yellow Paper 4.3.1)."""
    bloom = 0
    empty = True
    for log in logs:
        empty = False
        bloom |= bloom_bits(log.address)
        for topic in log.topics:
            bloom |= bloom_bits(topic)
    return EMPTY_BLOOM if empty else bloom.to_bytes(256, "big")


def combine_blooms(blooms: Iterable[bytes]) -> bytes:
    value = 0
    for bloom in blooms:
        if bloom != EMPTY_BLOOM:
            value |= int.from_bytes(bloom, "big")
    return value.to_bytes(256, "big")
