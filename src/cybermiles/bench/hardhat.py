"""The Hardhat 2 baseline of ``cmt bench rpc --vs-hardhat``: the same ERC20 load, same bytes.

Setup (not timed):

* ``benchmarks/hardhat`` (package.json + package-lock.json pinning ``hardhat@2``) gets its
  dependencies with ``npm ci`` when ``node_modules`` is missing;
* ``hardhat node`` starts on a free loopback port with ``benchmarks/hardhat/hardhat.config.js``:
  chain id = the bench chain's (so the very transactions signed for ``cmt`` are valid), the
  1,000 bench keys as accounts with big balances (a JSON file in a temp dir, passed by env),
  ``initialBaseFeePerGas`` 0 and automine (one block per transaction, Hardhat's default);
* TestToken's runtime code is put at the bench token address (``hardhat_setCode``, what our
  genesis does) and every holder's balance slot plus ``totalSupply`` are set with
  ``hardhat_setStorageAt``; Hardhat's per-request console logging is switched off
  (``hardhat_setLoggingEnabled(false)``), as it would only slow Hardhat down.

Load: Hardhat's automine refuses nonce gaps and handles the items of one batch concurrently,
so each sender's transactions go in nonce order, one request at a time: K concurrent clients
over disjoint senders, each awaiting every answer. Automine mines before answering, so latency
= request round trip, and tx/s = N / (last answer - first send). Receipts are checked afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from .core import (
    ACCOUNT_BALANCE,
    CHAIN_ID,
    TOKEN_ADDRESS,
    TOKEN_BALANCE,
    TOTAL_SUPPLY_SLOT,
    BenchFailure,
    balance_slot,
)
from .rpc import (
    JSON_HEADERS,
    LoadResult,
    Log,
    NodeProcess,
    client_shares,
    free_port,
    loadavg,
    rpc_batch,
    rpc_call,
    tx_hash_hex,
    verify_receipts,
)
from .txgen import BenchKey

HARDHAT_DIR = Path("benchmarks/hardhat")
NPM_CI_TIMEOUT = 600


def find_hardhat_dir() -> Path:
    """``benchmarks/hardhat`` of the source checkout this package runs from."""
    starts = [Path(__file__).resolve().parent, Path.cwd().resolve()]
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / HARDHAT_DIR
            if (candidate / "package.json").is_file():
                return candidate
    raise BenchFailure(f"cannot find {HARDHAT_DIR}/package.json above {starts[0]} or the cwd")


def hardhat_bin(project: Path) -> Path:
    return project / "node_modules" / ".bin" / "hardhat"


def ensure_hardhat(project: Path, log: Log) -> Path:
    """The project's ``hardhat`` executable, running ``npm ci`` first if it is missing."""
    binary = hardhat_bin(project)
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise BenchFailure(
            "--vs-hardhat needs Node.js and npm on PATH (to install Hardhat 2 in "
            f"{project} with `npm ci`); install Node.js >= 18 or run without --vs-hardhat"
        )
    log(f"installing Hardhat: npm ci in {project} ...")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=NPM_CI_TIMEOUT,
        check=False,
    )
    if done.returncode != 0 or not binary.exists():
        raise BenchFailure(f"`npm ci` in {project} failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return binary


def write_accounts(keys: Sequence[BenchKey], path: Path) -> None:
    """Hardhat's ``networks.hardhat.accounts``: the bench keys with the bench balance."""
    accounts = [
        {"privateKey": "0x" + k.private_key.hex(), "balance": str(ACCOUNT_BALANCE)} for k in keys
    ]
    path.write_text(json.dumps(accounts))


async def setup_token(session: Any, url: str, keys: Sequence[BenchKey], token_code: bytes) -> None:
    """Install TestToken at TOKEN_ADDRESS with every holder funded; silence request logging."""
    chain_id = int(await rpc_call(session, url, "eth_chainId", []), 16)
    if chain_id != CHAIN_ID:
        raise BenchFailure(f"the Hardhat node runs chain {chain_id}, not {CHAIN_ID}")
    await rpc_call(session, url, "hardhat_setLoggingEnabled", [False])
    token = "0x" + TOKEN_ADDRESS.hex()
    await rpc_call(session, url, "hardhat_setCode", [token, "0x" + token_code.hex()])
    slots = [(balance_slot(k.address), TOKEN_BALANCE) for k in keys]
    slots.append((TOTAL_SUPPLY_SLOT, TOKEN_BALANCE * len(keys)))
    calls = [
        ("hardhat_setStorageAt", [token, hex(slot), "0x" + value.to_bytes(32, "big").hex()])
        for slot, value in slots
    ]
    for start in range(0, len(calls), 200):
        await rpc_batch(session, url, calls[start : start + 200])
    probe = keys[-1].address.hex().rjust(64, "0")
    balance = await rpc_call(
        session, url, "eth_call", [{"to": token, "data": "0x70a08231" + probe}, "latest"]
    )
    if int(balance, 16) != TOKEN_BALANCE:
        raise BenchFailure(f"Hardhat token setup failed: balanceOf = {balance}")


async def _send_sequential(
    session: Any, url: str, items: Sequence[tuple[bytes, str]], latencies: list[float]
) -> float:
    """Send one request at a time; record each round trip; return when the last answered."""
    for body, tx_hash in items:
        start = time.perf_counter()
        async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
            answer = orjson.loads(await resp.read())
        latencies.append(time.perf_counter() - start)
        if answer.get("result") != tx_hash:
            raise BenchFailure(f"Hardhat eth_sendRawTransaction {tx_hash}: {answer}")
    return time.perf_counter()


async def load_hardhat(
    url: str,
    raws: Sequence[bytes],
    keys: Sequence[BenchKey],
    token_code: bytes,
    clients: int,
    node: NodeProcess,
) -> LoadResult:
    """Set the token up, run the timed ERC20 load against Hardhat, verify the receipts."""
    import aiohttp

    hashes = [tx_hash_hex(raw) for raw in raws]
    items = [
        [
            (
                orjson.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": k,
                        "method": "eth_sendRawTransaction",
                        "params": ["0x" + raws[k].hex()],
                    }
                ),
                hashes[k],
            )
            for k in share
        ]
        for share in client_shares(raws, clients)
    ]
    result = LoadResult("hardhat", "erc20", len(raws), clients, 1)
    connector = aiohttp.TCPConnector(limit=clients + 4)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await setup_token(session, url, keys, token_code)
        lists: list[list[float]] = [[] for _ in items]
        cpu_before = node.cpu_seconds()
        result.first_send = time.perf_counter()
        sends = [
            _send_sequential(session, url, share, lat)
            for share, lat in zip(items, lists, strict=True)
        ]
        ends = await asyncio.gather(*sends)
        cpu_after = node.cpu_seconds()
        result.last_commit = result.last_send_done = max(ends)
        result.loadavg_after = loadavg()
        if cpu_before is not None and cpu_after is not None:
            result.node_cpu_s = cpu_after - cpu_before
        result.latencies = [x for lat in lists for x in lat]
        result.blocks = await verify_receipts(session, url, hashes)
    return result


def run_hardhat_erc20(
    raws: Sequence[bytes],
    keys: Sequence[BenchKey],
    token_code: bytes,
    clients: int,
    *,
    log: Log,
) -> LoadResult:
    """Start a Hardhat node, run the ERC20 load against it, kill its process group."""
    import aiohttp

    project = find_hardhat_dir()
    binary = ensure_hardhat(project, log)
    with tempfile.TemporaryDirectory(prefix="cmt-bench-hardhat-") as tmp:
        accounts = Path(tmp) / "accounts.json"
        write_accounts(keys, accounts)
        port = free_port()
        env = dict(
            os.environ,
            CMT_BENCH_HARDHAT_ACCOUNTS=str(accounts),
            CMT_BENCH_HARDHAT_CHAIN_ID=str(CHAIN_ID),
            HARDHAT_DISABLE_TELEMETRY_PROMPT="true",
        )
        argv = [str(binary), "node", "--hostname", "127.0.0.1", "--port", str(port)]
        node = NodeProcess(argv, Path(tmp) / "hardhat.log", cwd=project, env=env)
        try:
            node.wait_rpc(port)
            return asyncio.run(
                load_hardhat(f"http://127.0.0.1:{port}/", raws, keys, token_code, clients, node)
            )
        except (BenchFailure, aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
            raise BenchFailure(
                f"hardhat: {type(exc).__name__}: {exc}\n--- hardhat log tail ---\n{node.tail()}"
            ) from exc
        finally:
            node.kill()
