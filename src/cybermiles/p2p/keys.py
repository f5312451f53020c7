"""Node keys: the Ed25519 identity that authenticates a node on the p2p network.

The key lives in ``<home>/config/node_key.json`` (mode 0600)::

    {"type": "ed25519", "seed": "<32-byte hex>", "pub_key": "<32-byte hex>", "id": "<node id>"}

Only ``seed`` matters; ``pub_key`` and ``id`` are there for people and are checked on load.
The node id is the hex of the first 20 bytes of ``sha256(pub_key)`` (as in CometBFT).
"""

from __future__ import annotations

import hashlib
import json
import logging
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from cybermiles.crypto.keyfile import write_secret_json

log = logging.getLogger("cybermiles.p2p")

NODE_KEY_FILE = Path("config") / "node_key.json"
NODE_ID_LENGTH = 20
NODE_ID_HEX_LENGTH = 2 * NODE_ID_LENGTH


class NodeKeyError(ValueError):
    """The node key file is unreadable or inconsistent (named in the message)."""


def node_id(public_key: bytes) -> str:
    """The node id of a raw 32-byte Ed25519 public key: hex of sha256(key)[:20]."""
    if len(public_key) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, got {len(public_key)}")
    return hashlib.sha256(public_key).digest()[:NODE_ID_LENGTH].hex()


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key of ``key``."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def node_id_of(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The node id of a private or public key object."""
    return node_id(public_key_bytes(key))


def is_node_id(text: str) -> bool:
    """True when ``text`` is 40 lowercase hex digits."""
    return len(text) == NODE_ID_HEX_LENGTH and all(c in "0123456789abcdef" for c in text)


def node_key_path(home: Path) -> Path:
    return Path(home) / NODE_KEY_FILE


def _seed(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def save_node_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` to ``path`` with mode 0600 (created private, then renamed into place)."""
    public = public_key_bytes(key)
    document = {
        "type": "ed25519",
        "seed": _seed(key).hex(),
        "pub_key": public.hex(),
        "id": node_id(public),
    }
    write_secret_json(path, document)


def load_node_key(path: Path) -> Ed25519PrivateKey:
    """Read the node key at ``path``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    NodeKeyError
        The file is not valid JSON, the seed is malformed, or ``pub_key``/``id`` do not match it.
    """
    text = path.read_text()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("node key %s is readable by others (mode %o); run chmod 600", path, mode)
    try:
        document = json.loads(text)
        if document.get("type") != "ed25519":
            raise NodeKeyError(f"{path}: type must be 'ed25519'")
        seed = bytes.fromhex(document["seed"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, NodeKeyError):
            raise
        raise NodeKeyError(f"{path}: not a node key file ({exc})") from exc
    if len(seed) != 32:
        raise NodeKeyError(f"{path}: seed must be 32 bytes")
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = public_key_bytes(key)
    if document.get("pub_key", public.hex()) != public.hex():
        raise NodeKeyError(f"{path}: pub_key does not match the seed")
    if document.get("id", node_id(public)) != node_id(public):
        raise NodeKeyError(f"{path}: id does not match the seed")
    return key


def load_or_generate_node_key(home: Path) -> Ed25519PrivateKey:
    """The node key of ``home``, generated (and saved with mode 0600) on first use."""
    path = node_key_path(home)
    try:
        return load_node_key(path)
    except FileNotFoundError:
        key = Ed25519PrivateKey.generate()
        save_node_key(path, key)
        log.info("generated node key %s (node id %s)", path, node_id_of(key))
        return key
