"""Smoke tests of `cmt bench core` with a tiny workload (shape and correctness, no timings)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cybermiles.bench.core import (
    ACCOUNTS,
    BLOCK_TIMINGS,
    CHAIN_ID,
    ERC20_GAS,
    PHASES,
    TOKEN_ADDRESS,
    TOKEN_BALANCE,
    BenchFailure,
    balance_slot,
    bench_genesis,
    load_token_code,
    run_core,
    run_workload,
    sign_workload,
)
from cybermiles.bench.txgen import bench_keys, erc20_transfer_data, sign_dynamic_fee_tx
from cybermiles.chain.transactions import decode_transaction
from cybermiles.cli.main import cli

TXS, BLOCK_TXS = 200, 100


def _check_workload(data: dict, txs: int, block_txs: int) -> None:
    assert data["txs"] == txs
    assert data["blocks"] == -(-txs // block_txs)  # every tx committed, blocks full
    assert set(data["phases_ms"]) == set(data["us_per_tx"]) == set(PHASES)
    assert all(v >= 0 for k, v in data["phases_ms"].items() if k != "block_other")
    assert data["tps"] > 0 and data["wall_ms"] > 0 and data["cpu_ms"] > 0
    assert len(data["runs_tps"]) >= 1


def test_run_core_commits_everything(tmp_path) -> None:
    report = run_core(TXS, BLOCK_TXS, data_parent=tmp_path)
    out = report.to_json()
    assert out["txs"] == TXS and out["block_txs"] == BLOCK_TXS and out["accounts"] == ACCOUNTS
    for workload in ("plain", "erc20"):
        assert out[f"{workload}_tps"] == out[workload]["tps"] > 0
        _check_workload(out[workload], TXS, BLOCK_TXS)
    assert out["machine"]["cpu_count"] >= 1 and out["machine"]["python"]
    assert list(tmp_path.iterdir()) == []  # temporary chains removed
    json.dumps(out)


def test_cli_json_is_the_last_line(tmp_path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "core",
            "--txs",
            "120",
            "--block-txs",
            "50",
            "--json",
            "--no-progress",
            "--runs",
            "2",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.rstrip("\n").splitlines()
    data = json.loads(lines[-1])
    assert set(data) >= {"plain_tps", "erc20_tps", "plain", "erc20", "txs", "block_txs", "machine"}
    assert data["txs"] == 120 and data["block_txs"] == 50
    for workload in ("plain", "erc20"):
        _check_workload(data[workload], 120, 50)
        assert len(data[workload]["runs_tps"]) == 2
    assert "committed tx/s" in result.output  # the tables come first


def test_cli_help_explains_what_is_measured() -> None:
    result = CliRunner().invoke(cli, ["bench", "core", "--help"])
    assert result.exit_code == 0
    for word in (
        "decode_recover",
        "admission",
        "execute",
        "state_root",
        "tx_receipt_roots",
        "commit",
        "--txs",
        "--block-txs",
        "--json",
        "ERC20",
        "pre-signed",
    ):
        assert word in result.output, word
    assert set(BLOCK_TIMINGS) <= set(PHASES)


def test_failed_transaction_fails_the_benchmark(tmp_path) -> None:
    keys = bench_keys(ACCOUNTS)
    genesis = bench_genesis(keys, load_token_code())
    raws = sign_workload("erc20", keys, 20, genesis.params.min_gas_price)
    # One more transfer than the sender holds: it reverts (receipt status 0).
    sender = keys[20]
    raws.append(
        sign_dynamic_fee_tx(
            sender.private_key,
            chain_id=CHAIN_ID,
            nonce=0,
            max_priority_fee_per_gas=10**9,
            max_fee_per_gas=10**9,
            gas=ERC20_GAS,
            to=TOKEN_ADDRESS,
            data=erc20_transfer_data(keys[0].address, TOKEN_BALANCE + 1),
        )
    )
    assert decode_transaction(raws[-1], CHAIN_ID).sender == sender.address
    with pytest.raises(BenchFailure, match="receipt status 0"):
        run_workload("erc20", raws, genesis, keys, 10, data_parent=tmp_path)


def test_genesis_prefunds_token_holders() -> None:
    keys = bench_keys(3)
    genesis = bench_genesis(keys, b"\x60\x00")
    token = genesis.alloc[TOKEN_ADDRESS]
    assert token.code == b"\x60\x00"
    assert token.storage[balance_slot(keys[1].address)] == TOKEN_BALANCE
    assert token.storage[2] == 3 * TOKEN_BALANCE
    assert all(genesis.alloc[k.address].balance > 0 for k in keys)
