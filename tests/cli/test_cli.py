"""`cmt` commands that need no running node, driven through click's CliRunner."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from eth_account import Account

import cybermiles
from cybermiles.chain.genesis import load_genesis
from cybermiles.cli.main import cli

VALID_ADDR = "0x" + "11" * 20
VALIDATOR_ADDR = "0x" + "22" * 20


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def good_genesis() -> dict[str, Any]:
    return {
        "chain_id": 777,
        "timestamp": 1_700_000_000,
        "alloc": {VALID_ADDR: {"balance": "1000000000000000000"}},
        "validators": [
            {
                "address": VALIDATOR_ADDR,
                "pub_key": "0x" + "ab" * 32,
                "max_amount": str(10**24),
                "name": "v0",
            }
        ],
    }


# --------------------------------------------------------------------------- version


def test_version() -> None:
    result = run("version")
    assert result.exit_code == 0
    assert result.output.startswith(f"cmt {cybermiles.__version__} (python ")


def test_help_lists_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("init", "node", "devnet", "account", "version"):
        assert command in result.output


# --------------------------------------------------------------------------- init


def test_init_writes_config_and_genesis(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run("init", "--home", str(home), "--chain-id", "99")
    assert result.exit_code == 0, result.output
    assert "Initialized chain 99" in result.output
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["rpc"]["port"] == 8545
    genesis = load_genesis(home / "genesis.json")
    assert genesis.chain_id == 99
    assert (home / "keystore").is_dir()


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("init", "--home", str(home), "--chain-id", "5").exit_code == 0
    before = (home / "genesis.json").read_text()
    (home / "data").mkdir()
    (home / "data" / "marker").write_text("chain data")

    again = run("init", "--home", str(home), "--chain-id", "6")
    assert again.exit_code == 1
    assert "--force" in again.output
    assert (home / "genesis.json").read_text() == before  # untouched
    assert (home / "data" / "marker").exists()

    forced = run("init", "--home", str(home), "--chain-id", "6", "--force")
    assert forced.exit_code == 0, forced.output
    assert load_genesis(home / "genesis.json").chain_id == 6
    assert not (home / "data").exists()  # --force deletes the old chain data


def test_init_with_genesis_file(tmp_path: Path) -> None:
    genesis_file = tmp_path / "g.json"
    genesis_file.write_text(json.dumps(good_genesis()))
    home = tmp_path / "home"
    result = run("init", "--home", str(home), "--genesis", str(genesis_file))
    assert result.exit_code == 0, result.output
    genesis = load_genesis(home / "genesis.json")
    assert genesis.chain_id == 777
    assert genesis.alloc[bytes.fromhex(VALID_ADDR[2:])].balance == 10**18
    assert [v.address.hex() for v in genesis.validators] == [VALIDATOR_ADDR[2:]]


def test_init_bad_chain_id_is_a_usage_error(tmp_path: Path) -> None:
    result = run("init", "--home", str(tmp_path / "h"), "--chain-id", "0")
    assert result.exit_code == 2
    assert "--chain-id" in result.output


def _with(**changes: Any) -> dict[str, Any]:
    doc = good_genesis()
    doc.update(changes)
    return doc


def _without(key: str) -> dict[str, Any]:
    doc = good_genesis()
    del doc[key]
    return doc


BAD_GENESIS: dict[str, tuple[str, str]] = {
    # name: (file text, text the error must contain)
    "invalid-json": ('{"chain_id": 1,', "invalid JSON"),
    "not-an-object": ("[1, 2]", "genesis"),
    "missing-chain-id": (json.dumps(_without("chain_id")), "chain_id"),
    "chain-id-zero": (json.dumps(_with(chain_id=0)), "chain_id"),
    "chain-id-not-int": (json.dumps(_with(chain_id="abc")), "chain_id"),
    "bad-alloc-address": (
        json.dumps(_with(alloc={"0x1234": {"balance": "1"}})),
        "alloc key '0x1234'",
    ),
    "negative-balance": (
        json.dumps(_with(alloc={VALID_ADDR: {"balance": "-1"}})),
        f"alloc.{VALID_ADDR}.balance",
    ),
    "unknown-account-field": (
        json.dumps(_with(alloc={VALID_ADDR: {"balance": "1", "bogus": 1}})),
        f"alloc.{VALID_ADDR}.bogus",
    ),
    "unknown-field": (json.dumps(_with(gas_limit=5)), "gas_limit"),
    "unknown-param": (
        json.dumps(_with(params={"block_gas_limt": 30_000_000})),
        "params.block_gas_limt",
    ),
    "out-of-range-param": (json.dumps(_with(params={"max_tx_size": 10})), "params.max_tx_size"),
    "bad-validator-pubkey": (
        json.dumps(_with(validators=[{"address": VALIDATOR_ADDR, "pub_key": "0x" + "ab" * 31}])),
        "validators[0].pub_key",
    ),
    "bad-validator-address": (
        json.dumps(_with(validators=[{"address": "0xnothex", "pub_key": "0x" + "ab" * 32}])),
        "validators[0].address",
    ),
    "zero-validator-max-amount": (
        json.dumps(
            _with(
                validators=[
                    {"address": VALIDATOR_ADDR, "pub_key": "0x" + "ab" * 32, "max_amount": 0}
                ]
            )
        ),
        "validators[0].max_amount",
    ),
    "bad-extra-data": (json.dumps(_with(extra_data="0x" + "00" * 33)), "extra_data"),
}


@pytest.mark.parametrize("case", sorted(BAD_GENESIS))
def test_init_rejects_bad_genesis(tmp_path: Path, case: str) -> None:
    text, must_name = BAD_GENESIS[case]
    genesis_file = tmp_path / "bad.json"
    genesis_file.write_text(text)
    home = tmp_path / "home"
    result = run("init", "--home", str(home), "--genesis", str(genesis_file))
    assert result.exit_code == 1, result.output
    assert "invalid genesis" in result.output
    assert must_name in result.output, result.output
    assert "Traceback" not in result.output
    assert not (home / "config.toml").exists()


def test_init_missing_genesis_file(tmp_path: Path) -> None:
    result = run("init", "--home", str(tmp_path / "h"), "--genesis", str(tmp_path / "nope.json"))
    assert result.exit_code == 1
    assert "nope.json" in result.output


# --------------------------------------------------------------------------- account

KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


def _password_file(tmp_path: Path, password: str = "correct horse") -> Path:
    path = tmp_path / "password.txt"
    path.write_text(password + "\nignored second line\n")
    return path


def _address(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("Address: ")]
    assert len(lines) == 1, result.output
    return lines[0].removeprefix("Address: ")


def test_account_import_roundtrip(tmp_path: Path) -> None:
    home = tmp_path / "home"
    password = _password_file(tmp_path)
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n")
    expected = Account.from_key(KEY).address

    result = run(
        "account",
        "import",
        "--home",
        str(home),
        "--password",
        str(password),
        "--key-file",
        str(key_file),
    )
    assert result.exit_code == 0, result.output
    assert _address(result) == expected

    files = list((home / "keystore").glob("UTC--*"))
    assert len(files) == 1
    assert files[0].stat().st_mode & 0o077 == 0  # not readable by others
    keystore = json.loads(files[0].read_text())
    assert keystore["address"].lower() == expected[2:].lower()
    assert "0x" + bytes(Account.decrypt(keystore, "correct horse")).hex() == KEY

    listed = run("account", "list", "--home", str(home))
    assert listed.exit_code == 0
    assert f"account #0: {expected.lower()}" in listed.output.lower()

    # the same key again is refused and nothing is written
    again = run(
        "account",
        "import",
        "--home",
        str(home),
        "--password",
        str(password),
        "--key-file",
        str(key_file),
    )
    assert again.exit_code == 1
    assert "already" in again.output
    assert len(list((home / "keystore").glob("UTC--*"))) == 1

    # without 0x, with surrounding blanks: the same key, still a duplicate
    key_file.write_text("  " + KEY[2:] + "  \n")
    assert (
        run(
            "account",
            "import",
            "--home",
            str(home),
            "--password",
            str(password),
            "--key-file",
            str(key_file),
        ).exit_code
        == 1
    )


def test_account_new_and_list(tmp_path: Path) -> None:
    home = tmp_path / "home"
    empty = run("account", "list", "--home", str(home))
    assert empty.exit_code == 0
    assert "no accounts" in empty.output

    password = _password_file(tmp_path, "pw1")
    first = _address(run("account", "new", "--home", str(home), "--password", str(password)))
    # prompted password (with confirmation) when --password is not given
    prompted = run("account", "new", "--home", str(home), input="pw2\npw2\n")
    assert prompted.exit_code == 0, prompted.output
    second = _address(prompted)
    assert first != second

    listed = run("account", "list", "--home", str(home)).output.lower()
    for address in (first, second):
        assert address.lower() in listed
    assert "account #1: " in listed
    by_address = {
        json.loads(p.read_text())["address"].lower(): json.loads(p.read_text())
        for p in (home / "keystore").glob("UTC--*")
    }
    assert Account.from_key(Account.decrypt(by_address[first[2:].lower()], "pw1")).address == first
    assert (
        Account.from_key(Account.decrypt(by_address[second[2:].lower()], "pw2")).address == second
    )


@pytest.mark.parametrize("key_text", ["0x1234", "zz" * 32, "00" * 32, "ff" * 33, ""])
def test_account_import_bad_key(tmp_path: Path, key_text: str) -> None:
    home = tmp_path / "home"
    key_file = tmp_path / "key.txt"
    key_file.write_text(key_text)
    result = run(
        "account",
        "import",
        "--home",
        str(home),
        "--password",
        str(_password_file(tmp_path)),
        "--key-file",
        str(key_file),
    )
    assert result.exit_code == 1, result.output
    assert "private key" in result.output
    assert "Traceback" not in result.output
    assert not list(home.glob("keystore/UTC--*"))


# --------------------------------------------------------------------------- node


def test_node_without_init_fails_clearly(tmp_path: Path) -> None:
    home = tmp_path / "never-initialized"
    result = run("node", "--home", str(home))
    assert result.exit_code == 1
    assert "config.toml not found" in result.output
    assert "cmt init" in result.output
    assert "Traceback" not in result.output


def test_node_with_bad_config_names_the_setting(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("init", "--home", str(home)).exit_code == 0
    config = home / "config.toml"
    config.write_text(config.read_text().replace("port = 8545", 'port = "eighty"'))
    result = run("node", "--home", str(home))
    assert result.exit_code == 1
    assert "rpc.port" in result.output


@pytest.mark.timeout(120)
def test_node_refuses_a_data_dir_of_another_genesis(tmp_path: Path) -> None:
    from cybermiles.node.node import Node

    home = tmp_path / "home"
    genesis_file = tmp_path / "g.json"
    genesis_file.write_text(json.dumps(good_genesis()))
    assert run("init", "--home", str(home), "--genesis", str(genesis_file)).exit_code == 0
    Node(home).chain.close()  # creates data/ with this genesis

    other = good_genesis()
    other["timestamp"] += 1
    (home / "genesis.json").write_text(json.dumps(other))
    result = run("node", "--home", str(home))
    assert result.exit_code == 1
    assert "different genesis" in result.output
