"""Helpers for the real-client tests: a `cmt devnet` child process and the Hardhat test keys.

Reuses ``tests/node/node_harness.py`` (process groups, free ports, bounded waits). pytest only
puts ``tests/node`` on ``sys.path`` once it has collected a test there, so add it here too:
``pytest tests/clients`` works on its own.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_NODE_TESTS = str(Path(__file__).resolve().parent.parent / "node")
if _NODE_TESTS not in sys.path:
    sys.path.append(_NODE_TESTS)

from node_harness import CmtProcess, Processes, free_port  # noqa: E402

CLIENTS_DIR = Path(__file__).resolve().parent
ARTIFACTS = CLIENTS_DIR.parent.parent / "contracts" / "build"
DEV_CHAIN_ID = 1234
ETHER = 10**18
# Hardhat / Anvil accounts #0 and #1 of the test mnemonic, funded by `cmt devnet`.
KEY0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
KEY1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ADDRESS0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
ADDRESS1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def artifact(name: str) -> dict[str, Any]:
    """``contracts/build/NAME.json`` (abi, bytecode, ...)."""
    return json.loads((ARTIFACTS / f"{name}.json").read_text())


class Devnet:
    """A running `cmt devnet` (automine, chain id 1234) and its log."""

    def __init__(self, proc: CmtProcess, url: str) -> None:
        self.proc = proc
        self.url = url  # http://127.0.0.1:PORT/
        self.ws_url = "ws" + url[len("http") :]

    def tail(self, lines: int = 40) -> str:
        return f"--- cmt devnet log (last {lines} lines) ---\n{self.proc.tail(lines)}"


def wait_started(proc: CmtProcess, timeout: float = 90.0) -> str:
    """The URL of the devnet's "Started HTTP and WebSocket JSON-RPC server at URL" line."""
    deadline = time.monotonic() + timeout
    while True:
        match = re.search(r"JSON-RPC server at (http://[0-9.]+:\d+/)", proc.output())
        if match:
            return match.group(1)
        if not proc.alive():
            raise AssertionError(f"cmt devnet exited with {proc.proc.returncode}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"cmt devnet not started within {timeout}s:\n{proc.tail()}")
        time.sleep(0.05)


@contextlib.contextmanager
def running_devnet(log_dir: Path) -> Iterator[Devnet]:
    """Start `cmt devnet --port P` on a free port; kill its process group on exit."""
    processes = Processes(log_dir)
    try:
        port = free_port()
        proc = processes.spawn("devnet", "--port", str(port), name="devnet")
        url = wait_started(proc)
        assert url == f"http://127.0.0.1:{port}/", url
        proc.wait_rpc(url.rstrip("/"))
        yield Devnet(proc, url)
    finally:
        processes.cleanup()
