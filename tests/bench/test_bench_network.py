"""`cmt bench network`: a tiny load on a 2-validator testnet commits everything (not speed)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from cybermiles.bench.network import client_shares
from cybermiles.cli.main import cli

JSON_KEYS = {
    "tps",
    "finality_p50_s",
    "finality_p95_s",
    "tps_overall",
    "txs",
    "committed",
    "blocks",
    "avg_txs_per_block",
    "rounds_gt0",
    "node_cpu_share",
    "loadavg_1m_before",
    "loadavg_1m_after",
    "validators",
    "runs_tps",
    "machine",
}


def test_client_shares_pin_senders_and_keep_nonce_order() -> None:
    shares = client_shares(5000, validators=4, clients=2)
    seen = sorted(k for node in shares for share in node for k in share)
    assert seen == list(range(5000))
    for i, node in enumerate(shares):
        for c, share in enumerate(node):
            assert share == sorted(share)
            assert all((k % 1000) % 4 == i and ((k % 1000) // 4) % 2 == c for k in share)


@pytest.mark.timeout(600)
def test_bench_network_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "network",
            "--validators",
            "2",
            "--txs",
            "200",
            "--rate",
            "400",
            "--batch",
            "50",
            "--json",
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report.keys() >= JSON_KEYS
    assert report["txs"] == 200 and report["validators"] == 2
    assert report["tps"] > 0 and 0 < report["finality_p50_s"] <= report["finality_p95_s"]
    assert report["committed"] == 200 and report["blocks"] >= 1
    assert len(report["node_cpu_share"]) == 2
    # every process stopped and the temporary testnet deleted
    assert not list(tmp_path.glob("cmt-bench-network-*"))
