"""A clean stop (SIGTERM) and restart of a real `cmt node` keeps the chain exactly as it was."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from node_harness import (
    CHAIN_ID,
    Processes,
    free_port,
    genesis_doc,
    hexint,
    init_home,
    make_accounts,
    sign_transfer,
    startup_head,
)


def last_logged_block(output: str) -> tuple[int, str]:
    """(number, hash prefix) of the last "block N txs=.. hash=0x.." line the producer logged."""
    found = re.findall(r"block (\d+) txs=\d+ gas=\d+ ms=[\d.]+ hash=0x([0-9a-f]+)", output)
    assert found, output[-3000:]
    number, block_hash = found[-1]
    return int(number), block_hash


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("block_time", ["0", "0.2"], ids=["automine", "interval"])
def test_sigterm_then_restart_keeps_head_and_mines_on(
    tmp_path: Path, processes: Processes, block_time: str
) -> None:
    accounts = make_accounts(3, seed=7)
    home = tmp_path / "home"
    init_home(home, genesis_doc(accounts))

    port = free_port()
    first = processes.node(home, port, "--block-time", block_time)
    rpc = first.wait_rpc(f"http://127.0.0.1:{port}")
    mined = []
    for nonce in range(3):
        for account in accounts:
            raw, tx_hash = sign_transfer(account, nonce, value=1000 + nonce)
            assert rpc.send_raw(raw) == tx_hash
            mined.append(tx_hash)
    receipts = {h: rpc.wait_receipt(h) for h in mined}
    assert all(r["status"] == "0x1" for r in receipts.values())
    before = rpc.block("latest")
    assert before is not None and hexint(before["number"]) >= 1
    balances = {a.address: rpc.balance(a.address) for a in accounts}
    rpc.close()

    first.signal(signal.SIGTERM)
    assert first.wait(60) == 0, first.tail()
    out = first.output()
    assert "stopped cleanly" in out
    assert "Traceback" not in out
    stop_number, stop_hash = last_logged_block(out)
    assert stop_number >= hexint(before["number"])
    if block_time == "0":  # automine: no block without a transaction
        assert stop_number == hexint(before["number"])
        assert before["hash"].startswith("0x" + stop_hash)

    port = free_port()
    second = processes.node(home, port, "--block-time", block_time)
    rpc = second.wait_rpc(f"http://127.0.0.1:{port}")
    start_number, start_hash, start_root = startup_head(second.output())
    assert (start_number, start_hash) == (stop_number, stop_hash)

    if block_time == "0":
        after = rpc.block("latest")
        assert after is not None
        for key in ("number", "hash", "stateRoot", "transactionsRoot", "receiptsRoot"):
            assert after[key] == before[key], key
    head_at_stop = rpc.block(stop_number)
    assert head_at_stop is not None
    assert head_at_stop["hash"].startswith("0x" + stop_hash)
    assert head_at_stop["stateRoot"].startswith("0x" + start_root)
    same = rpc.block(hexint(before["number"]))
    assert same == before
    for tx_hash, receipt in receipts.items():
        assert rpc.receipt(tx_hash) == receipt
    for account in accounts:
        assert rpc.nonce(account.address) == 3
        if block_time == "0":
            assert rpc.balance(account.address) == balances[account.address]

    # mining continues on top of the old head
    raw, tx_hash = sign_transfer(accounts[0], 3, chain_id=CHAIN_ID)
    assert rpc.send_raw(raw) == tx_hash
    receipt = rpc.wait_receipt(tx_hash)
    assert receipt["status"] == "0x1"
    assert hexint(receipt["blockNumber"]) > stop_number
    assert rpc.nonce(accounts[0].address) == 4
    assert second.alive()

    second.signal(signal.SIGTERM)
    assert second.wait(60) == 0, second.tail()
    assert "stopped cleanly" in second.output()
