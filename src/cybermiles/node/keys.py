"""A validator's consensus key and the path of its last-sign state.

The key lives in ``<home>/config/priv_validator_key.json`` (mode 0600)::

    {"type": "ed25519", "seed": "<32-byte hex>", "pub_key": "0x<32-byte hex>"}

Only ``seed`` (the RFC 8032 private seed) matters; ``pub_key`` is there for people (it is the
``pub_key`` of the validator's entry in ``genesis.json`` or of its ``declareCandidacy``) and is
checked on load. A home without this file is a full node that does not sign.

The signer's double-sign protection state is ``<home>/data/priv_validator_state.json``
(:class:`~cybermiles.consensus.privval.FilePrivValidator` creates it on first use). It lives in
``data/`` so that deleting the chain data (``cmt init --force``) also resets it, while the key
survives; never copy a state file between machines or run two signers on one key.

The validator's beacon onions derive from the same seed
(:func:`cybermiles.consensus.beacon.onion_seed`), so the key file is all a validator needs.
"""

from __future__ import annotations

import json
import logging
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from cybermiles.crypto.ed25519 import private_key_from_seed, public_key_bytes
from cybermiles.crypto.keyfile import write_secret_json

if TYPE_CHECKING:
    from cybermiles.consensus.privval import FilePrivValidator

log = logging.getLogger("cybermiles.node")

PRIV_VALIDATOR_KEY_FILE = Path("config") / "priv_validator_key.json"
PRIV_VALIDATOR_STATE_FILE = Path("data") / "priv_validator_state.json"


class ValidatorKeyError(ValueError):
    """The validator key file is unreadable or inconsistent (named in the message)."""


@dataclass(frozen=True, slots=True)
class ValidatorKey:
    """A consensus key: its 32-byte private seed, the key object and the raw public key."""

    seed: bytes = field(repr=False)  # secret: never in logs or tracebacks
    private_key: Ed25519PrivateKey = field(compare=False, repr=False)
    pub_key: bytes = b""

    @classmethod
    def from_seed(cls, seed: bytes) -> ValidatorKey:
        if len(seed) != 32:
            raise ValueError(f"an Ed25519 seed has 32 bytes, got {len(seed)}")
        key = private_key_from_seed(seed)
        return cls(seed, key, public_key_bytes(key))

    @classmethod
    def generate(cls) -> ValidatorKey:
        key = Ed25519PrivateKey.generate()
        return cls.from_seed(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    def onion_seed(self, index: int = 0) -> bytes:
        """The seed of this validator's beacon onion number ``index`` (0 at genesis)."""
        from cybermiles.consensus.beacon import onion_seed

        return onion_seed(self.seed, index)


def validator_key_path(home: Path) -> Path:
    return Path(home) / PRIV_VALIDATOR_KEY_FILE


def priv_validator_state_path(home: Path) -> Path:
    return Path(home) / PRIV_VALIDATOR_STATE_FILE


def save_validator_key(path: Path, key: ValidatorKey) -> None:
    """Write ``key`` to ``path`` with mode 0600 (created private, fsynced, renamed into place)."""
    document = {"type": "ed25519", "seed": key.seed.hex(), "pub_key": "0x" + key.pub_key.hex()}
    write_secret_json(path, document)


def load_validator_key_file(path: Path) -> ValidatorKey:
    """Read the consensus key at ``path``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValidatorKeyError
        Not JSON, a wrong type, a malformed seed, or a ``pub_key`` that does not match it.
    """
    text = path.read_text()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("validator key %s is readable by others (mode %o); run chmod 600", path, mode)
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValidatorKeyError(f"{path}: expected a JSON object")
        if document.get("type") != "ed25519":
            raise ValidatorKeyError(f"{path}: type must be 'ed25519'")
        seed = bytes.fromhex(document["seed"])
    except ValidatorKeyError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValidatorKeyError(f"{path}: not a validator key file ({exc})") from exc
    if len(seed) != 32:
        raise ValidatorKeyError(f"{path}: seed must be 32 bytes")
    key = ValidatorKey.from_seed(seed)
    stated = document.get("pub_key")
    if stated is not None and str(stated).lower().removeprefix("0x") != key.pub_key.hex():
        raise ValidatorKeyError(f"{path}: pub_key does not match the seed")
    return key


def load_validator_key(home: Path) -> ValidatorKey | None:
    """The consensus key of ``home``, or None when the home has none (not a validator)."""
    try:
        return load_validator_key_file(validator_key_path(home))
    except FileNotFoundError:
        return None


def load_or_create_validator_key(home: Path) -> ValidatorKey:
    """The consensus key of ``home``, generated (and saved with mode 0600) if missing."""
    existing = load_validator_key(home)
    if existing is not None:
        return existing
    key = ValidatorKey.generate()
    save_validator_key(validator_key_path(home), key)
    log.info(
        "generated validator key %s (pub_key 0x%s)", validator_key_path(home), key.pub_key.hex()
    )
    return key


def load_priv_validator(home: Path) -> FilePrivValidator | None:
    """The :class:`~cybermiles.consensus.privval.FilePrivValidator` of ``home`` (its key and
    ``data/priv_validator_state.json``), or None when the home holds no validator key."""
    key = load_validator_key(home)
    if key is None:
        return None
    from cybermiles.consensus.privval import FilePrivValidator

    return FilePrivValidator(key.private_key, priv_validator_state_path(home))
