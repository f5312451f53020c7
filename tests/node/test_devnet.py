"""`cmt devnet`: banner with the Hardhat accounts, chain id 1234, automine, clean Ctrl-C."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from eth_account import Account
from node_harness import CmtProcess, Processes, Rpc, free_port, hexint, sign_transfer

HARDHAT = [
    (
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    ),
    (
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    ),
]
DEV_CHAIN_ID = 1234
ETHER = 10**18


def wait_banner(proc: CmtProcess, timeout: float = 90.0) -> tuple[str, str]:
    """Wait for the devnet banner; return (RPC URL, its whole output so far)."""
    deadline = time.monotonic() + timeout
    while True:
        out = proc.output()
        match = re.search(r"JSON-RPC server at (http://[0-9.]+:\d+)/", out)
        if match and "Mnemonic:" in out:
            return match.group(1), out
        if not proc.alive():
            raise AssertionError(f"devnet exited with {proc.proc.returncode}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no devnet banner within {timeout}s:\n{proc.tail()}")
        time.sleep(0.05)


def listed_accounts(out: str) -> list[tuple[int, str, int, str]]:
    found = re.findall(
        r"Account #(\d+): (0x[0-9a-fA-F]{40}) \((\d+) CMT\)\s*\nPrivate Key: (0x[0-9a-f]{64})", out
    )
    return [(int(i), address, int(balance), key) for i, address, balance, key in found]


def stop_with_ctrl_c(proc: CmtProcess) -> str:
    proc.signal(signal.SIGINT)
    assert proc.wait(60) == 0, proc.tail()
    out = proc.output()
    assert "stopped cleanly" in out
    assert "Traceback" not in out
    return out


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_devnet_banner_chain_id_automine_and_ctrl_c(processes: Processes) -> None:
    port = free_port()
    proc = processes.spawn("devnet", "--port", str(port), name="devnet")
    url, out = wait_banner(proc)
    assert url == f"http://127.0.0.1:{port}"

    accounts = listed_accounts(out)
    assert [i for i, *_ in accounts] == list(range(10))
    for (i, address, _balance, key), expected in zip(accounts, HARDHAT, strict=False):
        assert (address, key) == expected, i
    for _i, address, balance, key in accounts:
        assert Account.from_key(key).address == address
        assert balance == 10_000
    home = re.search(r"Home: (\S+) \(temporary\)", out)
    assert home is not None, out
    assert Path(home.group(1)).is_dir()
    assert "automine" in out

    rpc = Rpc(url)
    assert rpc.call("eth_chainId") == "0x4d2"
    assert rpc.balance(HARDHAT[0][0]) == 10_000 * ETHER
    start = rpc.block_number()

    sender = Account.from_key(HARDHAT[0][1])
    recipient = "0x" + "5a" * 20
    raw, tx_hash = sign_transfer(sender, 0, chain_id=DEV_CHAIN_ID, to=recipient, value=12345)
    assert rpc.send_raw(raw) == tx_hash
    receipt = rpc.wait_receipt(tx_hash, timeout=30)
    assert receipt["status"] == "0x1"
    assert hexint(receipt["blockNumber"]) == start + 1  # automine: one block for this tx
    assert rpc.balance(recipient) == 12345
    assert rpc.nonce(sender.address) == 1
    rpc.close()

    stop_with_ctrl_c(proc)
    assert "temporary devnet removed" in proc.output()
    assert not Path(home.group(1)).exists()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_devnet_with_home_and_account_count_persists(tmp_path: Path, processes: Processes) -> None:
    home = tmp_path / "devhome"
    args = ("devnet", "--home", str(home), "--accounts", "3", "--block-time", "0.2")
    port = free_port()
    proc = processes.spawn(*args, "--port", str(port), name="devnet")
    url, out = wait_banner(proc)
    accounts = listed_accounts(out)
    assert [(i, a) for i, a, *_ in accounts] == [
        (0, HARDHAT[0][0]),
        (1, HARDHAT[1][0]),
        (2, accounts[2][1]),
    ]
    assert "(temporary)" not in out
    assert "every 0.2s" in out

    rpc = Rpc(url)
    raw, tx_hash = sign_transfer(Account.from_key(HARDHAT[1][1]), 0, chain_id=DEV_CHAIN_ID)
    rpc.send_raw(raw)
    mined_in = rpc.wait_receipt(tx_hash)["blockHash"]
    rpc.close()
    stop_with_ctrl_c(proc)
    assert (home / "genesis.json").is_file() and (home / "data").is_dir()

    port = free_port()
    again = processes.spawn(*args, "--port", str(port), name="devnet")
    url, _ = wait_banner(again)
    rpc = Rpc(url)
    assert rpc.receipt(tx_hash)["blockHash"] == mined_in  # the same chain, reused
    assert rpc.nonce(HARDHAT[1][0]) == 1
    rpc.close()
    stop_with_ctrl_c(again)
    assert home.is_dir()
