"""Accounts the node signs for: dev keys, unlocked keystore keys, impersonated addresses.

Rules:

* A devnet holds the private keys of its dev accounts (the test mnemonic); they are always
  unlocked and listed first by ``eth_accounts``, in derivation order.
* ``cmt node --unlock ADDR[,ADDR...] --password FILE`` decrypts keystore v3 files in
  ``<home>/keystore`` at start (:func:`unlock_keystore`), with geth's rules: an entry is an
  address or the index of a keystore file in ``cmt account list`` order; password file line
  ``i`` unlocks entry ``i``, and the last line serves every later entry. A missing account,
  an unreadable file or a wrong password stops the start with a clear :class:`UnlockError`.
* Impersonated addresses (``hardhat_impersonateAccount``, devnet only) have no key: the node
  sends transactions for them with a fake signature and the sender set directly. They are not
  listed by ``eth_accounts`` (as Hardhat) and cannot sign messages.
* Anything else is an unknown account (JSON-RPC -32000 "unknown account").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path

from eth_account import Account

from cybermiles.crypto.address import parse_address, to_checksum


class UnlockError(ValueError):
    """A keystore account could not be unlocked; the message says which and why."""


class LocalAccounts:
    """Keys the node holds plus (dev only) addresses it may send for without a key."""

    def __init__(self, keys: dict[bytes, bytes] | None = None) -> None:
        self._keys: dict[bytes, bytes] = dict(keys or {})
        self._impersonated: set[bytes] = set()
        self._lock = threading.Lock()

    def addresses(self) -> list[bytes]:
        """Addresses with a key, in the order they were given (eth_accounts)."""
        return list(self._keys)

    def key(self, address: bytes) -> bytes | None:
        """The private key of ``address``, or None if the node holds none."""
        return self._keys.get(address)

    def impersonate(self, address: bytes) -> None:
        with self._lock:
            self._impersonated.add(address)

    def stop_impersonating(self, address: bytes) -> bool:
        """Stop impersonating ``address``; False if it was not impersonated."""
        with self._lock:
            if address not in self._impersonated:
                return False
            self._impersonated.discard(address)
            return True

    def is_impersonated(self, address: bytes) -> bool:
        with self._lock:
            return address in self._impersonated


# --------------------------------------------------------------------------- keystore


def read_passwords(path: Path) -> list[str]:
    """The lines of a password file (geth: one password per unlocked account)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UnlockError(f"cannot read password file {path}: {exc.strerror or exc}") from None
    if not lines:
        raise UnlockError(f"password file {path} is empty")
    return lines


def keystore_files(directory: Path) -> list[Path]:
    """Keystore files in ``cmt account list`` order (sorted ``UTC--*`` names)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("UTC--*") if p.is_file())


def _load_keyfile(path: Path) -> dict[str, object]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UnlockError(f"cannot read keystore file {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("address"), str):
        raise UnlockError(f"{path} is not a keystore v3 file (no address)")
    return doc


def _keyfile_address(doc: dict[str, object], path: Path) -> bytes:
    text = str(doc["address"])
    try:
        return parse_address(text if text.startswith(("0x", "0X")) else "0x" + text)
    except ValueError:
        raise UnlockError(f"{path}: invalid address {text!r}") from None


def parse_unlock_list(text: str) -> list[str]:
    """``ADDR[,ADDR...]`` (addresses or keystore indexes) as a list of stripped entries."""
    entries = [item.strip() for item in text.split(",")]
    if not entries or any(not item for item in entries):
        raise UnlockError(f"--unlock: expected ADDRESS[,ADDRESS...], got {text!r}")
    return entries


def unlock_keystore(
    directory: Path, entries: Iterable[str], passwords: list[str]
) -> dict[bytes, bytes]:
    """Decrypt the keystore files named by ``entries``; return ``{address: private key}``."""
    files = keystore_files(directory)
    docs = [(path, _load_keyfile(path)) for path in files]
    by_address = {_keyfile_address(doc, path): (path, doc) for path, doc in docs}
    keys: dict[bytes, bytes] = {}
    for i, entry in enumerate(entries):
        if entry.isdigit():
            index = int(entry)
            if index >= len(docs):
                raise UnlockError(
                    f"--unlock: index {index} is out of range: {directory} holds "
                    f"{len(docs)} keystore file(s)"
                )
            path, doc = docs[index]
            address = _keyfile_address(doc, path)
        else:
            try:
                address = parse_address(entry)
            except ValueError as exc:
                raise UnlockError(f"--unlock: {exc}") from None
            found = by_address.get(address)
            if found is None:
                raise UnlockError(
                    f"--unlock: no keystore file for {to_checksum(address)} in {directory}"
                )
            path, doc = found
        password = passwords[min(i, len(passwords) - 1)]
        try:
            key = bytes(Account.decrypt(doc, password))
        except ValueError:
            raise UnlockError(
                f"cannot unlock {to_checksum(address)}: wrong password (or damaged keystore "
                f"file {path.name})"
            ) from None
        except Exception as exc:  # malformed crypto section: unsupported kdf, bad fields
            raise UnlockError(f"cannot unlock {to_checksum(address)}: {path.name}: {exc}") from None
        keys[address] = key
    return keys
