"""Keccak-256 (the pre-standard SHA-3 Ethereum uses), via safe-pysha3."""

from sha3 import keccak_256

EMPTY_KECCAK = keccak_256(b"").digest()


def keccak256(data: bytes) -> bytes:
    """Return the 32-byte Keccak-256 digest of ``data``."""
    return keccak_256(data).digest()
