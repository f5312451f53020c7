"""Ed25519 consensus keys (validators sign votes with them; staking records the public key)."""

from __future__ import annotations

from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PUBLIC_KEY_SIZE = 32


def private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    """The key whose 32-byte private seed is ``seed`` (RFC 8032)."""
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


SIGNATURE_SIZE = 64


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message`` (RFC 8032, deterministic)."""
    return key.sign(message)


@lru_cache(maxsize=1024)
def public_key_from_bytes(pub_key: bytes) -> Ed25519PublicKey:
    """Parse a raw 32-byte public key (cached: validator keys are few and reused).

    Raises
    ------
    ValueError
        If ``pub_key`` is not 32 bytes.
    """
    if len(pub_key) != PUBLIC_KEY_SIZE:
        raise ValueError(f"Ed25519 public key must be {PUBLIC_KEY_SIZE} bytes, got {len(pub_key)}")
    return Ed25519PublicKey.from_public_bytes(pub_key)


def verify(pub_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid signature of ``message`` by raw public key ``pub_key``.

    Never raises: a malformed key or signature is simply not valid.
    """
    if len(signature) != SIGNATURE_SIZE:
        return False
    try:
        public_key_from_bytes(pub_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
