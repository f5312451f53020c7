"""Genesis parsing (every error names its field), EIP-2935, and opening a data dir."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from eth.vm.forks.prague.constants import HISTORY_STORAGE_ADDRESS, HISTORY_STORAGE_CONTRACT_CODE

from cybermiles.chain.errors import ChainError, GenesisError
from cybermiles.chain.genesis import (
    Genesis,
    GenesisAccount,
    load_genesis,
    parse_genesis,
    write_genesis,
)
from cybermiles.chain.params import Params
from cybermiles.node.blockchain import Blockchain, GenesisMismatch

A = "0x" + "aa" * 20
B = "0x" + "bB" * 20  # mixed case is accepted (no checksum check)
HISTORY = bytes(HISTORY_STORAGE_ADDRESS)


def base() -> dict[str, Any]:
    return {
        "chain_id": 1234,
        "timestamp": 1_700_000_000,
        "extra_data": "0x01",
        "params": {"min_gas_price": "2000000000", "block_gas_limit": 30_000_000},
        "alloc": {
            A: {"balance": "1000", "nonce": 3, "code": "0x6000", "storage": {"0x0": "0x1", "2": 3}},
            B: {"balance": "0x10"},
        },
        "validators": [
            {
                "address": A,
                "pub_key": "0x" + "11" * 32,
                "max_amount": "10000",
                "comp_rate": "0.25",
                "name": "v0",
                "delegations": [{"address": B, "amount": "0x10"}],
            },
            {"address": B, "pub_key": "0x" + "22" * 32, "max_amount": 500, "comp_rate": 10**17},
        ],
    }


def changed(path: str, value: Any) -> dict[str, Any]:
    """``base()`` with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    doc = copy.deepcopy(base())
    *parents, last = path.split("/")
    target: Any = doc
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    key: Any = int(last) if isinstance(target, list) else last
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return doc


# --------------------------------------------------------------------------- valid input


def test_parse_full_genesis() -> None:
    g = parse_genesis(base())
    assert g.chain_id == 1234
    assert g.timestamp == 1_700_000_000
    assert g.extra_data == b"\x01"
    assert g.params == Params(min_gas_price=2 * 10**9, block_gas_limit=30_000_000)
    a = g.alloc[bytes.fromhex("aa" * 20)]
    assert a == GenesisAccount(balance=1000, nonce=3, code=b"\x60\x00", storage={0: 1, 2: 3})
    assert g.alloc[bytes.fromhex("bb" * 20)].balance == 16
    assert [v.max_amount for v in g.validators] == [10000, 500]
    assert [v.comp_rate for v in g.validators] == [25 * 10**16, 10**17]
    assert g.validators[0].pub_key == b"\x11" * 32
    assert g.validators[0].name == "v0"
    assert g.validators[0].delegations == ((bytes.fromhex("bb" * 20), 16),)
    assert g.validators[1].description == ("", "", "", "", "")
    assert parse_genesis(g.to_json()) == g  # the written form reads back the same


def test_minimal_genesis_defaults() -> None:
    g = parse_genesis({"chain_id": 7})
    assert g.chain_id == 7
    assert g.timestamp == 0
    assert g.params == Params()
    assert g.validators == ()
    assert g.extra_data == b""
    assert set(g.alloc) == {HISTORY}


@pytest.mark.parametrize("value", [12345, "12345", "0x3039", " 12345 "])
def test_integers_as_number_decimal_or_hex(value: Any) -> None:
    g = parse_genesis({"chain_id": value, "timestamp": value, "params": {"free_tx_quota": value}})
    assert g.chain_id == g.timestamp == g.params.free_tx_quota == 12345


def test_eip2935_history_contract_added() -> None:
    g = parse_genesis(base())
    history = g.alloc[HISTORY]
    assert history.code == HISTORY_STORAGE_CONTRACT_CODE
    assert history.nonce == 1
    assert history.balance == 0
    assert "0x" + HISTORY.hex() in g.to_json()["alloc"]


def test_eip2935_contract_given_in_alloc_is_kept() -> None:
    doc = base()
    doc["alloc"]["0x" + HISTORY.hex()] = {"balance": "5", "nonce": 1, "code": "0x00"}
    history = parse_genesis(doc).alloc[HISTORY]
    assert history.balance == 5
    assert history.code == b"\x00"


def test_json_roundtrip(tmp_path: Path) -> None:
    g = parse_genesis(base())
    assert parse_genesis(json.loads(json.dumps(g.to_json()))) == g
    path = tmp_path / "genesis.json"
    write_genesis(g, path)
    assert load_genesis(path) == g
    assert load_genesis(str(path)) == g


# --------------------------------------------------------------------------- invalid input

INVALID: list[tuple[str, Any, str]] = [
    # (case id, document, text the message must contain)
    ("not-object", [1], "genesis"),
    ("unknown-field", changed("gasLimit", 1), "gasLimit: unknown genesis field"),
    ("missing-chain-id", changed("chain_id", ...), "chain_id: missing"),
    ("chain-id-zero", changed("chain_id", 0), "chain_id"),
    ("chain-id-too-big", changed("chain_id", 2**53), "chain_id"),
    ("chain-id-bool", changed("chain_id", True), "chain_id"),
    ("chain-id-float", changed("chain_id", 1.5), "chain_id"),
    ("chain-id-text", changed("chain_id", "one"), "chain_id"),
    ("timestamp-negative", changed("timestamp", -1), "timestamp"),
    ("timestamp-too-big", changed("timestamp", 2**64), "timestamp"),
    ("extra-data-not-hex", changed("extra_data", "0xzz"), "extra_data"),
    ("extra-data-odd", changed("extra_data", "0x123"), "extra_data"),
    ("extra-data-too-long", changed("extra_data", "0x" + "00" * 33), "extra_data"),
    ("params-not-object", changed("params", [1]), "params"),
    ("unknown-param", changed("params/gas_price", 1), "params.gas_price"),
    ("param-out-of-range", changed("params/block_gas_limit", 20_999), "params.block_gas_limit"),
    ("param-negative", changed("params/min_gas_price", -1), "params.min_gas_price"),
    ("param-max-tx-size", changed("params/max_tx_size", 2**30), "params.max_tx_size"),
    ("param-window-zero", changed("params/free_tx_window", 0), "params.free_tx_window"),
    ("param-not-int", changed("params/free_tx_quota", "lots"), "params.free_tx_quota"),
    ("alloc-not-object", changed("alloc", []), "alloc"),
    ("alloc-short-address", {"chain_id": 1, "alloc": {"0x1234": {}}}, "alloc key '0x1234'"),
    ("alloc-no-0x", {"chain_id": 1, "alloc": {"aa" * 20: {}}}, "alloc key"),
    (
        "alloc-duplicate",
        {"chain_id": 1, "alloc": {A: {}, A.upper().replace("0X", "0x"): {}}},
        "duplicate address",
    ),
    ("account-not-object", changed(f"alloc/{A}", 5), f"alloc.{A}"),
    ("account-unknown-field", changed(f"alloc/{A}/bal", 1), f"alloc.{A}.bal"),
    ("balance-negative", changed(f"alloc/{A}/balance", "-1"), f"alloc.{A}.balance"),
    ("balance-too-big", changed(f"alloc/{A}/balance", hex(2**256)), f"alloc.{A}.balance"),
    ("balance-not-int", changed(f"alloc/{A}/balance", "1e18"), f"alloc.{A}.balance"),
    ("nonce-max", changed(f"alloc/{A}/nonce", 2**64 - 1), f"alloc.{A}.nonce"),
    ("code-not-hex", changed(f"alloc/{A}/code", "6000"), f"alloc.{A}.code"),
    ("storage-not-object", changed(f"alloc/{A}/storage", [1]), f"alloc.{A}.storage"),
    ("storage-bad-key", changed(f"alloc/{A}/storage", {"x": "1"}), f"alloc.{A}.storage key"),
    ("storage-bad-value", changed(f"alloc/{A}/storage", {"1": -1}), f"alloc.{A}.storage[1]"),
    ("validators-not-list", changed("validators", {}), "validators"),
    ("validator-not-object", changed("validators/0", "v"), "validators[0]"),
    ("validator-no-address", changed("validators/1/address", ...), "validators[1].address"),
    ("validator-bad-address", changed("validators/0/address", "0x12"), "validators[0].address"),
    (
        "validator-pubkey-short",
        changed("validators/0/pub_key", "0x" + "11" * 31),
        "validators[0].pub_key",
    ),
    (
        "validator-pubkey-long",
        changed("validators/0/pub_key", "0x" + "11" * 33),
        "validators[0].pub_key",
    ),
    ("validator-pubkey-not-hex", changed("validators/0/pub_key", "0xgg"), "validators[0].pub_key"),
    ("validator-max-zero", changed("validators/1/max_amount", 0), "validators[1].max_amount"),
    ("validator-no-max", changed("validators/1/max_amount", ...), "validators[1].max_amount"),
    ("validator-rate-above-1", changed("validators/0/comp_rate", "1.5"), "validators[0].comp_rate"),
    ("validator-rate-text", changed("validators/0/comp_rate", "high"), "validators[0].comp_rate"),
    ("validator-unknown-field", changed("validators/0/power", 10), "validators[0].power"),
    (
        "validator-delegation-zero",
        changed("validators/0/delegations/0/amount", 0),
        "validators[0].delegations[0].amount",
    ),
    ("validator-duplicate-key", changed("validators/1/pub_key", "0x" + "11" * 32), "pub_key"),
    ("validator-name-not-text", changed("validators/0/name", 5), "validators[0].name"),
    ("validator-duplicate", changed("validators/1/address", A), "duplicate validator"),
]


@pytest.mark.parametrize(("doc", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_genesis_names_the_field(doc: Any, field: str) -> None:
    with pytest.raises(GenesisError) as info:
        parse_genesis(doc)
    assert field in str(info.value)
    assert isinstance(info.value, ChainError)


def test_load_genesis_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(GenesisError, match=r"missing\.json"):
        load_genesis(missing)
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "chain_id": 1,\n}')
    with pytest.raises(GenesisError) as info:
        load_genesis(bad)
    assert "bad.json" in str(info.value)
    assert "line 3" in str(info.value)
    fields = tmp_path / "fields.json"
    fields.write_text(json.dumps(changed("params/max_tx_size", 1)))
    with pytest.raises(GenesisError, match=r"params\.max_tx_size"):
        load_genesis(fields)


# --------------------------------------------------------------------------- data directory


def _open(data_dir: Path, genesis: Genesis) -> Blockchain:
    return Blockchain(data_dir, genesis)


def test_blockchain_reopens_with_same_genesis(tmp_path: Path) -> None:
    g = parse_genesis(base())
    chain = _open(tmp_path / "data", g)
    head_hash, root = chain.head_hash, chain.head.state_root
    with chain.state_at() as state:
        assert state.get_balance(bytes.fromhex("aa" * 20)) == 1000
        assert state.get_nonce(HISTORY) == 1
    chain.close()
    again = _open(tmp_path / "data", parse_genesis(base()))
    try:
        assert again.head.block_number == 0
        assert again.head_hash == head_hash
        assert again.head.state_root == root
    finally:
        again.close()


DIFFERENT_GENESIS = {
    "timestamp": changed("timestamp", 1_700_000_001),
    "extra_data": changed("extra_data", "0x02"),
    "block_gas_limit": changed("params/block_gas_limit", 40_000_000),
    "alloc_balance": changed(f"alloc/{A}/balance", "1001"),
    "alloc_extra_account": changed("alloc/0x" + "cc" * 20, {"balance": "1"}),
    "chain_id": changed("chain_id", 1235),
    "min_gas_price": changed("params/min_gas_price", 1),
    "validators": changed("validators/1/max_amount", 6),
}


@pytest.mark.parametrize("case", sorted(DIFFERENT_GENESIS))
def test_blockchain_refuses_other_genesis(tmp_path: Path, case: str) -> None:
    _open(tmp_path / "data", parse_genesis(base())).close()
    other = parse_genesis(DIFFERENT_GENESIS[case])
    with pytest.raises(GenesisMismatch, match="different genesis"):
        _open(tmp_path / "data", other).close()
    # the refusal did not damage the data directory
    _open(tmp_path / "data", parse_genesis(base())).close()
