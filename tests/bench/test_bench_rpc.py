"""Smoke test of `cmt bench rpc` with a tiny load against a real node (shape and correctness,
no timing assertions). The Hardhat comparison is a benchmark, not a test: it is not run here."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cybermiles.bench.core import ACCOUNTS
from cybermiles.bench.rpc import client_shares, percentile, tx_hash_hex
from cybermiles.bench.txgen import bench_keys, sign_dynamic_fee_tx
from cybermiles.cli.main import cli

TXS, CLIENTS, BATCH = 200, 2, 50


def test_percentile_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile([3.0], 95) == 3.0
    assert percentile([], 50) == 0.0


def test_client_shares_are_disjoint_by_sender_and_keep_nonce_order() -> None:
    raws = [b""] * 2500  # tx k: sender k % 1000, nonce k // 1000
    shares = client_shares(raws, 3)
    assert sorted(k for share in shares for k in share) == list(range(2500))
    for c, share in enumerate(shares):
        assert {(k % ACCOUNTS) % 3 for k in share} == {c}
        assert share == sorted(share)


def test_tx_hash_is_keccak_of_the_raw_bytes() -> None:
    from cybermiles.chain.transactions import decode_transaction

    key = bench_keys(1)[0]
    raw = sign_dynamic_fee_tx(
        key.private_key,
        chain_id=18,
        nonce=0,
        max_priority_fee_per_gas=1,
        max_fee_per_gas=1,
        gas=21_000,
        to=b"\x11" * 20,
    )
    assert tx_hash_hex(raw) == "0x" + decode_transaction(raw, 18).hash.hex()


@pytest.mark.slow
def test_cli_json_tiny_load_commits_everything() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "rpc",
            "--txs",
            str(TXS),
            "--clients",
            str(CLIENTS),
            "--batch",
            str(BATCH),
            "--json",
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    for key in (
        "plain_tps",
        "erc20_tps",
        "plain_p50_s",
        "plain_p95_s",
        "erc20_p50_s",
        "erc20_p95_s",
    ):
        assert isinstance(data[key], float) and data[key] > 0, key
    assert data["hardhat_erc20_tps"] is None and data["hardhat_ratio"] is None
    assert data["txs"] == TXS and data["clients"] == CLIENTS and data["batch"] == BATCH
    assert data["machine"]["cpu_count"] >= 1
    for workload in ("plain", "erc20"):
        detail = data[workload]
        # every tx was announced in a block and its receipt (status 1) checked, else exit != 0
        assert detail["txs"] == TXS and detail["blocks"] >= 1
        assert detail["p50_s"] <= detail["p95_s"] <= detail["max_s"]
