"""config.toml's [p2p] and [consensus] sections, and the validator key files (node/keys.py)."""

from __future__ import annotations

import json
import stat
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cybermiles.consensus import timeouts
from cybermiles.node.config import (
    ConfigError,
    NodeConfig,
    load_config,
    parse_config,
    write_config,
)
from cybermiles.node.keys import (
    ValidatorKey,
    ValidatorKeyError,
    load_or_create_validator_key,
    load_priv_validator,
    load_validator_key,
    load_validator_key_file,
    priv_validator_state_path,
    save_validator_key,
    validator_key_path,
)
from cybermiles.p2p.peers import P2PConfig

ID_A = "a" * 40
ID_B = "0123456789abcdef0123456789abcdef01234567"

OLD_CONFIG = """
moniker = "old"
archive = false
log_level = "info"

[rpc]
addr = "127.0.0.1"
port = 8545

[mining]
block_time = 0.0
"""


def parse_toml(text: str) -> NodeConfig:
    return parse_config(tomllib.loads(text))


def expect_error(data: dict[str, Any], *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# --------------------------------------------------------------------------- defaults


def test_old_config_without_new_sections_loads_with_defaults() -> None:
    config = parse_toml(OLD_CONFIG)
    assert config.moniker == "old"
    assert config.p2p.listen_addr == "127.0.0.1:26656"
    assert config.p2p.persistent_peers == [] and config.p2p.seeds == []
    assert (config.p2p.max_inbound, config.p2p.max_outbound) == (40, 10)
    assert config.consensus.enabled is False
    assert config.consensus.timeouts == "default"
    assert config.consensus.timeout_config() == timeouts.DEFAULT
    assert config.consensus.wal_dir == "data/cs.wal"


def test_round_trip_through_toml(tmp_path: Path) -> None:
    config = NodeConfig(moniker="n1")
    config.p2p.listen_addr = "127.0.0.1:30000"
    config.p2p.external_addr = "10.0.0.1:30000"
    config.p2p.persistent_peers = [f"{ID_A}@127.0.0.1:30001", f"{ID_B}@[::1]:30002"]
    config.p2p.seeds = [f"{ID_B}@seed.example.org:26656"]
    config.consensus.enabled = True
    config.consensus.timeouts = {"profile": "fast", "propose_ms": 250}
    write_config(tmp_path, config)
    loaded = load_config(tmp_path)
    assert loaded == config
    assert loaded.consensus.timeout_config() == replace(timeouts.FAST, propose_ms=250)


# --------------------------------------------------------------------------- [p2p]


def test_p2p_section_to_transport_config() -> None:
    config = parse_config(
        {
            "p2p": {
                "listen_addr": "0.0.0.0:26656",
                "external_addr": "203.0.113.7:26656",
                "persistent_peers": [f"{ID_A}@127.0.0.1:26657"],
                "seeds": [f"{ID_B}@127.0.0.1:26658"],
                "max_inbound": 5,
                "max_outbound": 0,
            }
        }
    )
    p2p = config.p2p.to_p2p_config()
    assert isinstance(p2p, P2PConfig)
    assert p2p.listen_addr == "0.0.0.0:26656"
    assert p2p.external_addr == "203.0.113.7:26656"
    assert p2p.persistent_peers == [f"{ID_A}@127.0.0.1:26657"]
    assert p2p.seeds == [f"{ID_B}@127.0.0.1:26658"]
    assert (p2p.max_inbound, p2p.max_outbound) == (5, 0)
    p2p.validate()


@pytest.mark.parametrize(
    ("p2p", "fragments"),
    [
        (
            {"persistent_peers": [f"{ID_A}@127.0.0.1:1", "127.0.0.1:26657"]},
            ("p2p.persistent_peers[1]", "127.0.0.1:26657", "node_id@host:port"),
        ),
        (
            {"persistent_peers": ["XYZ@127.0.0.1:26657"]},
            ("p2p.persistent_peers[0]", "XYZ@127.0.0.1:26657", "40 lowercase hex"),
        ),
        (
            {"persistent_peers": [f"{ID_A}@127.0.0.1:70000"]},
            ("p2p.persistent_peers[0]", "port"),
        ),
        ({"persistent_peers": [f"{ID_A}@nohost"]}, ("p2p.persistent_peers[0]", "host:port")),
        ({"seeds": ["127.0.0.1:1"]}, ("p2p.seeds[0]", "node_id@host:port")),
        ({"persistent_peers": [7]}, ("p2p.persistent_peers[0]", "expected a string")),
        ({"persistent_peers": f"{ID_A}@127.0.0.1:1"}, ("p2p.persistent_peers", "expected list")),
        ({"listen_addr": "localhost"}, ("p2p.listen_addr", "host:port")),
        ({"external_addr": "1.2.3.4"}, ("p2p.external_addr",)),
        ({"max_inbound": -1}, ("p2p.max_inbound", ">= 0")),
        ({"max_outbound": "10"}, ("p2p.max_outbound", "expected int")),
        ({"laddr": "x"}, ("p2p.laddr", "unknown setting")),
    ],
)
def test_bad_p2p_settings_name_the_entry(p2p: dict[str, Any], fragments: tuple[str, ...]) -> None:
    expect_error({"p2p": p2p}, *fragments)


def test_p2p_must_be_a_table() -> None:
    expect_error({"p2p": "127.0.0.1:1"}, "[p2p]", "table")


# --------------------------------------------------------------------------- [consensus]


def test_consensus_profiles() -> None:
    fast = parse_config({"consensus": {"enabled": True, "timeouts": "fast"}})
    assert fast.consensus.enabled is True
    assert fast.consensus.timeout_config() == timeouts.FAST
    default = parse_config({"consensus": {"timeouts": "default"}})
    assert default.consensus.timeout_config() == timeouts.DEFAULT


def test_consensus_explicit_timeouts_from_file(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        OLD_CONFIG
        + """
[consensus]
enabled = true
wal_dir = "/var/lib/cmt/wal"

[consensus.timeouts]
propose_ms = 1500
commit_ms = 0
"""
    )
    config = load_config(tmp_path)
    tc = config.consensus.timeout_config()
    assert tc.propose_ms == 1500 and tc.commit_ms == 0
    assert tc.prevote_ms == timeouts.DEFAULT.prevote_ms  # unspecified: the default profile
    assert config.consensus.wal_path(tmp_path) == Path("/var/lib/cmt/wal")


def test_wal_dir_is_relative_to_home(tmp_path: Path) -> None:
    config = parse_config({})
    assert config.consensus.wal_path(tmp_path) == tmp_path / "data" / "cs.wal"


@pytest.mark.parametrize(
    ("consensus", "fragments"),
    [
        ({"enabled": "yes"}, ("consensus.enabled", "true or false")),
        ({"enabled": 1}, ("consensus.enabled", "true or false")),
        ({"timeouts": "slow"}, ("consensus.timeouts", "'slow'", "default", "fast")),
        ({"timeouts": 3}, ("consensus.timeouts", "profile name or a table")),
        ({"timeouts": {"propose": 10}}, ("consensus.timeouts.propose", "unknown setting")),
        ({"timeouts": {"propose_ms": -1}}, ("consensus.timeouts.propose_ms", "non-negative")),
        ({"timeouts": {"propose_ms": 1.5}}, ("consensus.timeouts.propose_ms", "integer")),
        ({"timeouts": {"commit_ms": True}}, ("consensus.timeouts.commit_ms",)),
        ({"timeouts": {"profile": "turbo"}}, ("consensus.timeouts.profile", "'turbo'")),
        ({"wal_dir": ""}, ("consensus.wal_dir", "empty")),
        ({"wal_dir": 5}, ("consensus.wal_dir", "expected str")),
        ({"create_empty_blocks": True}, ("consensus.create_empty_blocks", "unknown setting")),
    ],
)
def test_bad_consensus_settings(consensus: dict[str, Any], fragments: tuple[str, ...]) -> None:
    expect_error({"consensus": consensus}, *fragments)


def test_other_sections_still_validated() -> None:
    expect_error({"rpc": {"port": 70000}}, "rpc.port")
    expect_error({"unknown": 1}, "node.unknown")


# --------------------------------------------------------------------------- node/keys.py


def test_validator_key_created_private_and_reloaded(tmp_path: Path) -> None:
    assert load_validator_key(tmp_path) is None
    key = load_or_create_validator_key(tmp_path)
    path = validator_key_path(tmp_path)
    assert path == tmp_path / "config" / "priv_validator_key.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["type"] == "ed25519"
    assert document["pub_key"] == "0x" + key.pub_key.hex()
    assert load_or_create_validator_key(tmp_path) == load_validator_key(tmp_path)
    again = load_validator_key(tmp_path)
    assert again is not None and again.seed == key.seed and again.pub_key == key.pub_key
    assert len(key.onion_seed(0)) == 32 and key.onion_seed(0) != key.onion_seed(1)


def test_validator_key_file_checks(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    key = ValidatorKey.from_seed(bytes(range(32)))
    save_validator_key(path, key)
    assert load_validator_key_file(path).pub_key == key.pub_key
    document = json.loads(path.read_text())
    for bad, fragment in [
        ({**document, "pub_key": "0x" + "00" * 32}, "pub_key does not match"),
        ({**document, "type": "secp256k1"}, "type must be 'ed25519'"),
        ({**document, "seed": "abcd"}, "seed must be 32 bytes"),
        ({"type": "ed25519"}, "not a validator key file"),
    ]:
        path.write_text(json.dumps(bad))
        with pytest.raises(ValidatorKeyError, match=fragment):
            load_validator_key_file(path)
    path.write_text("not json")
    with pytest.raises(ValidatorKeyError, match="not a validator key file"):
        load_validator_key_file(path)


def test_priv_validator_uses_data_state_file(tmp_path: Path) -> None:
    assert load_priv_validator(tmp_path) is None
    key = load_or_create_validator_key(tmp_path)
    privval = load_priv_validator(tmp_path)
    assert privval is not None
    assert privval.pub_key == key.pub_key
    assert privval.path == priv_validator_state_path(tmp_path)
    assert privval.path == tmp_path / "data" / "priv_validator_state.json"
    assert privval.path.exists()
