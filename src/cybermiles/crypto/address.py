"""Ethereum account addresses: contract-creation addresses, EIP-55 checksums, parsing.

Rules:

* An address is exactly 20 raw bytes inside the node; text form is ``0x`` + 40 hex digits.
* ``CREATE``: ``keccak256(rlp([sender, nonce]))[12:]``.
* ``CREATE2`` (EIP-1014): ``keccak256(0xff ++ sender ++ salt ++ keccak256(init_code))[12:]``,
  with a 32-byte salt.
* :func:`parse_address` accepts any letter case and does not verify EIP-55 checksums
  (geth's JSON-RPC does not either); anything else raises ValueError with a clear message.
"""

from __future__ import annotations

import re

import rlp
from eth_utils import to_checksum_address

from cybermiles.crypto.keccak import keccak256

ADDRESS_SIZE = 20

_ADDRESS_TEXT = re.compile(r"0[xX][0-9a-fA-F]{40}")


def _check_address(addr: bytes, what: str) -> None:
    if not isinstance(addr, bytes | bytearray) or len(addr) != ADDRESS_SIZE:
        raise ValueError(f"{what} must be {ADDRESS_SIZE} bytes")


def create_address(sender: bytes, nonce: int) -> bytes:
    """Address of a contract created by ``sender`` with account nonce ``nonce`` (CREATE)."""
    _check_address(sender, "sender")
    if nonce < 0:
        raise ValueError("nonce must be non-negative")
    return keccak256(rlp.encode([bytes(sender), nonce]))[12:]


def create2_address(sender: bytes, salt: bytes, init_code: bytes) -> bytes:
    """Address of a contract created by ``sender`` with CREATE2 (EIP-1014)."""
    _check_address(sender, "sender")
    if len(salt) != 32:
        raise ValueError("CREATE2 salt must be 32 bytes")
    return keccak256(b"\xff" + bytes(sender) + bytes(salt) + keccak256(init_code))[12:]


def to_checksum(addr_bytes: bytes) -> str:
    """EIP-55 mixed-case text form of a 20-byte address."""
    _check_address(addr_bytes, "address")
    return to_checksum_address(bytes(addr_bytes))


def parse_address(text: str) -> bytes:
    """Parse ``0x`` + 40 hex digits (any case) into 20 bytes; ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"address must be a hex string, got {type(text).__name__}")
    if _ADDRESS_TEXT.fullmatch(text) is None:
        shown = text if len(text) <= 50 else text[:47] + "..."
        raise ValueError(
            f"invalid address {shown!r}: expected 0x followed by 40 hexadecimal digits"
        )
    return bytes.fromhex(text[2:])
