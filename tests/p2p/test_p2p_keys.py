"""Node keys: file format, permissions, node ids."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cybermiles.p2p.keys import (
    NodeKeyError,
    load_node_key,
    load_or_generate_node_key,
    node_id,
    node_id_of,
    node_key_path,
    public_key_bytes,
)

# RFC 8032, section 7.1, TEST 1.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


def test_node_id_is_hex_of_first_20_bytes_of_sha256() -> None:
    assert node_id(RFC8032_PUB) == hashlib.sha256(RFC8032_PUB).hexdigest()[:40]
    key = Ed25519PrivateKey.from_private_bytes(RFC8032_SEED)
    assert public_key_bytes(key) == RFC8032_PUB
    assert node_id_of(key) == node_id_of(key.public_key()) == node_id(RFC8032_PUB)
    with pytest.raises(ValueError):
        node_id(b"\x00" * 33)


def test_generate_writes_a_private_file_and_reloads(tmp_path: Path) -> None:
    key = load_or_generate_node_key(tmp_path)
    path = node_key_path(tmp_path)
    assert path == tmp_path / "config" / "node_key.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["id"] == node_id_of(key)
    again = load_or_generate_node_key(tmp_path)
    assert public_key_bytes(again) == public_key_bytes(key)
    assert not list(path.parent.glob("*.tmp"))


def test_inconsistent_or_malformed_files_are_refused(tmp_path: Path) -> None:
    key = load_or_generate_node_key(tmp_path)
    path = node_key_path(tmp_path)
    document = json.loads(path.read_text())
    document["id"] = "00" * 20
    path.write_text(json.dumps(document))
    with pytest.raises(NodeKeyError, match="id does not match"):
        load_node_key(path)
    for text in ("not json", '{"type": "rsa"}', '{"type": "ed25519", "seed": "abcd"}', "[]"):
        path.write_text(text)
        with pytest.raises(NodeKeyError):
            load_node_key(path)
    assert key is not None
