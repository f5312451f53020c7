"""secp256k1 ECDSA for Ethereum: signing, public-key recovery and addresses, via coincurve.

Rules:

* Signatures are ``(y_parity, r, s)`` over a 32-byte message hash that the caller has
  already computed (coincurve is always called with ``hasher=None``).
* :func:`recover_address` accepts any mathematically valid signature: ``y_parity`` in
  {0, 1} and ``1 <= r, s < SECP256K1_N``. It does *not* enforce EIP-2 low-s; policies such
  as "s <= SECP256K1_HALF_N for transactions" belong to the caller.
* :func:`sign` produces low-s signatures (libsecp256k1 always normalises ``s``).
* An address is the last 20 bytes of keccak256 of the 64-byte uncompressed public key
  (without its 0x04 prefix).
"""

from __future__ import annotations

from coincurve import PrivateKey, PublicKey

from cybermiles.crypto.keccak import keccak256

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2


def _public_key_to_address(public_key: PublicKey) -> bytes:
    return keccak256(public_key.format(compressed=False)[1:])[12:]


def recover_address(msg_hash: bytes, y_parity: int, r: int, s: int) -> bytes:
    """Return the 20-byte address that signed ``msg_hash``; ValueError if the signature is bad."""
    if len(msg_hash) != 32:
        raise ValueError("message hash must be 32 bytes")
    if y_parity not in (0, 1):
        raise ValueError("signature y_parity must be 0 or 1")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise ValueError("signature r and s must be in [1, secp256k1n)")
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((y_parity,))
    try:
        public_key = PublicKey.from_signature_and_message(signature, msg_hash, hasher=None)
    except Exception as exc:  # coincurve raises ValueError/TypeError for unrecoverable sigs
        raise ValueError(f"cannot recover public key from signature: {exc}") from exc
    return _public_key_to_address(public_key)


def sign(msg_hash: bytes, private_key: bytes) -> tuple[int, int, int]:
    """Sign a 32-byte hash; return ``(y_parity, r, s)`` with low ``s``."""
    if len(msg_hash) != 32:
        raise ValueError("message hash must be 32 bytes")
    signature = PrivateKey(private_key).sign_recoverable(msg_hash, hasher=None)
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    return signature[64], r, s


def private_key_to_address(private_key: bytes) -> bytes:
    """Return the 20-byte address of a 32-byte private key."""
    return _public_key_to_address(PrivateKey(private_key).public_key)
