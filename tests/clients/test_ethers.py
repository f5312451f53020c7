"""ethers v6 against a real `cmt devnet`: runs `node ethers_flow.mjs URL` (see that script).

The JS dependencies come from `npm ci` in tests/clients (`make test` runs it).
``run_ethers_flow`` is shared with ``test_ethers_testnet.py`` (the same script against a node of
a 4-validator BFT testnet).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clients_harness import CLIENTS_DIR, Devnet, running_devnet

EXPECTED_CHECKS = {
    "chainId",
    "deploy.status",
    "deploy.contractAddress",
    "transfer.status",
    "transfer.receiptLog",
    "balanceOf.sender",
    "balanceOf.recipient",
    "queryFilter.Transfer",
    "queryFilter.topicFilter",
    "getBlock.latest",
    "revert.reason",
    "revert.estimateGas",
    "customError.parseError",
    "customError.revert",
    "feeData.gasPrice",
    "maxPriorityFeePerGas",
    "feeHistory",
    "plain.defaultFees.status",
    "plain.defaultFees.senderBalance",
    "plain.defaultFees.pendingNonce",
    "plain.eip1559.type",
    "plain.eip1559.status",
    "plain.eip1559.senderBalance",
    'ws.on("block")',
    "ws.blockNumber",
    "staking.delegate.status",
    "staking.Delegated",
    "staking.delegation",
    "cmt_queryDelegator",
    "staking.awards",
}

# ethers_flow.mjs's description of the chain it runs against (its defaults: `cmt devnet`).
FLOW_TARGET_VARIABLES = ("CMT_CHAIN_ID", "CMT_STAKING_VALIDATOR", "CMT_AUTOMINE")


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` (Node.js 20+) is not on PATH: the ethers client test needs it")
    if not (CLIENTS_DIR / "node_modules" / "ethers" / "package.json").is_file():
        pytest.fail(
            "ethers is not installed in tests/clients/node_modules: run "
            "`cd tests/clients && npm ci --no-audit --no-fund` (`make test` does it)"
        )
    return node


def run_ethers_flow(
    url: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 90,
    node_log: Callable[[], str] = lambda: "",
) -> dict[str, Any]:
    """Run `node ethers_flow.mjs URL` with ``env`` added to the environment; require a zero
    exit and every check of ``EXPECTED_CHECKS``; the script's final JSON line. ``node_log``
    gives the node log tail that failure messages carry."""
    node = node_binary()
    # The target comes from ``env`` alone, never from the caller's environment.
    inherited = {k: v for k, v in os.environ.items() if k not in FLOW_TARGET_VARIABLES}
    try:
        done = subprocess.run(
            [node, str(CLIENTS_DIR / "ethers_flow.mjs"), url],
            cwd=CLIENTS_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            env={**inherited, **(env or {})},
        )
    except subprocess.TimeoutExpired as exc:  # the script's own guard fires first
        pytest.fail(f"ethers_flow.mjs hung: {exc.stderr}\n{node_log()}")
    report = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}\n{node_log()}"
    assert done.returncode == 0, f"ethers_flow.mjs exited with {done.returncode}\n{report}"
    lines = done.stdout.strip().splitlines()
    assert lines, report
    result = json.loads(lines[-1])
    assert result["ok"] is True, report
    missing = EXPECTED_CHECKS - set(result["checks"])
    assert not missing, f"checks not run: {sorted(missing)}\n{report}"
    assert result["token"].startswith("0x") and len(result["token"]) == 42
    assert result["eip1559Transfer"]["type"] == 2
    assert int(result["eip1559Transfer"]["fee"]) >= 0
    assert result["wsBlock"] > 0
    assert int(result["stakingAward"]) > 0
    return result


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    with running_devnet(tmp_path_factory.mktemp("ethers-devnet")) as net:
        yield net


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ethers_v6_flow(devnet: Devnet, tmp_path: Path) -> None:
    # The script's defaults are the devnet's (chain id 1234, automine, delegating to account
    # #0, the devnet validator; its guard fires at 50 s).
    run_ethers_flow(devnet.url, timeout=90, node_log=devnet.tail)
