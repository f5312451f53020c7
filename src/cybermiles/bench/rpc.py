"""End-to-end RPC throughput benchmark: a real ``cmt node`` process fed over JSON-RPC.

For each workload (``plain`` CMT transfers, then ``erc20`` TestToken transfers; the same
pre-signed transactions as ``cmt bench core``, see :mod:`cybermiles.bench.core`):

1. a fresh temporary home gets the bench genesis (1,000 funded accounts, TestToken in genesis
   with every holder pre-funded, block gas limit 1e9) and a ``cmt node`` subprocess starts on a
   free loopback port with interval mining (``--block-time``, default 0.25 s);
2. N transactions are pre-signed and their JSON-RPC batch bodies pre-encoded (not timed);
3. a WebSocket ``eth_subscribe("newHeads")`` listener stamps every new block with the time its
   notification arrived and fetches its tx hashes (``eth_getBlockByNumber(n, false)``);
4. the clock starts when the first batch is sent: K asyncio clients (aiohttp, one keep-alive
   connection each) send disjoint shares (client c owns the senders with index % K == c, in
   nonce order) as batches of B ``eth_sendRawTransaction``, one batch in flight per client;
5. the clock stops when the block holding the last transaction is announced. Committed tx/s =
   N / (last commit - first send); per-tx latency = commit time of its block - send time of its
   batch.

Afterwards every receipt is fetched (JSON-RPC batches) and must have status 1 in the block the
listener saw, else :class:`~cybermiles.bench.core.BenchFailure`. ``--vs-hardhat`` runs the
ERC20 load against a Hardhat 2 node too (:mod:`cybermiles.bench.hardhat`).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cybermiles.crypto.keccak import keccak256

from .core import (
    ACCOUNTS,
    CHAIN_ID,
    WORKLOADS,
    BenchFailure,
    bench_genesis,
    load_token_code,
    machine_info,
    sign_workload,
)
from .progress import ProgressBars
from .txgen import BenchKey, bench_keys

DEFAULT_TXS = 20_000  # a few seconds per workload: the first and last blocks weigh little
DEFAULT_CLIENTS = 4
DEFAULT_BATCH = 100
DEFAULT_BLOCK_TIME = 0.25
RECEIPT_BATCH = 500
STALL_TIMEOUT = 60.0  # seconds without a new committed bench tx before giving up
STARTUP_TIMEOUT = 90.0
JSON_HEADERS = {"Content-Type": "application/json"}

Log = Callable[[str], None]


# --------------------------------------------------------------------------- results


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass(slots=True)
class LoadResult:
    """One timed load against one node: times are ``time.perf_counter`` seconds."""

    target: str  # "cmt" or "hardhat"
    workload: str
    txs: int
    clients: int
    batch: int
    first_send: float = 0.0
    last_commit: float = 0.0
    last_send_done: float = 0.0
    latencies: list[float] = field(default_factory=list)
    blocks: int = 0
    node_cpu_s: float | None = None  # CPU time of the node process during the load
    loadavg_after: float | None = None

    @property
    def wall(self) -> float:
        return self.last_commit - self.first_send

    @property
    def tps(self) -> float:
        return self.txs / self.wall if self.wall > 0 else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 95)

    def to_json(self) -> dict[str, Any]:
        return {
            "tps": round(self.tps, 1),
            "txs": self.txs,
            "wall_s": round(self.wall, 3),
            "send_s": round(self.last_send_done - self.first_send, 3),
            "p50_s": round(self.p50, 4),
            "p95_s": round(self.p95, 4),
            "max_s": round(max(self.latencies, default=0.0), 4),
            "blocks": self.blocks,
            "node_cpu_s": None if self.node_cpu_s is None else round(self.node_cpu_s, 2),
            "node_cpu_share": (
                None
                if self.node_cpu_s is None or self.wall <= 0
                else round(self.node_cpu_s / self.wall, 2)
            ),
            "loadavg_1m_after": self.loadavg_after,
        }


@dataclass(slots=True)
class RpcReport:
    """Results of :func:`run_rpc`: per workload the median run, plus Hardhat's if asked for."""

    txs: int
    clients: int
    batch: int
    block_time: float
    runs: int
    results: dict[str, LoadResult]
    all_tps: dict[str, list[float]]
    hardhat: LoadResult | None = None
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def hardhat_ratio(self) -> float | None:
        if self.hardhat is None or self.hardhat.tps <= 0 or "erc20" not in self.results:
            return None
        return self.results["erc20"].tps / self.hardhat.tps

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for workload, result in self.results.items():
            out[f"{workload}_tps"] = round(result.tps, 1)
            out[f"{workload}_p50_s"] = round(result.p50, 4)
            out[f"{workload}_p95_s"] = round(result.p95, 4)
        ratio = self.hardhat_ratio
        out["hardhat_erc20_tps"] = None if self.hardhat is None else round(self.hardhat.tps, 1)
        out["hardhat_ratio"] = None if ratio is None else round(ratio, 2)
        out.update(txs=self.txs, clients=self.clients, batch=self.batch)
        out.update(block_time=self.block_time, runs=self.runs, accounts=ACCOUNTS)
        for workload, result in self.results.items():
            out[workload] = result.to_json()
            out[workload]["runs_tps"] = [round(x, 1) for x in self.all_tps[workload]]
        out["hardhat"] = None if self.hardhat is None else self.hardhat.to_json()
        out["machine"] = self.machine
        return out


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` and its live descendants (all their threads;
    e.g. the node's transaction decoder), from /proc; None elsewhere or once ``pid`` is gone."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    for p in _process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            if p == pid:
                return None
            continue  # a descendant that just exited
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux: /proc/PID/task/TID/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def loadavg() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


class NodeProcess:
    """A server subprocess in its own process group; output goes to ``log_path``."""

    def __init__(
        self,
        argv: list[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
            env=env,
        )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.pid)

    def kill(self) -> None:
        """SIGKILL the whole process group (unless already reaped) and reap it."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._log.close()

    def wait_rpc(self, port: int, timeout: float = STARTUP_TIMEOUT) -> None:
        """Wait until ``eth_chainId`` answers on ``port``; fail early if the process exits."""
        body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise BenchFailure(
                    f"{' '.join(self.argv)} exited with {self.proc.returncode} before its RPC "
                    f"answered:\n{self.tail()}"
                )
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("POST", "/", body=body, headers=JSON_HEADERS)
                if conn.getresponse().status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            if time.monotonic() > deadline:
                raise BenchFailure(
                    f"RPC on port {port} not up within {timeout:.0f}s:\n{self.tail()}"
                )
            time.sleep(0.1)


def cmt_argv(*args: str) -> list[str]:
    """The command line running ``cmt ARGS`` with this interpreter's installation."""
    script = Path(sys.executable).with_name("cmt")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from cybermiles.cli.main import main; main()", *args]


def init_bench_home(home: Path, keys: Sequence[BenchKey], token_code: bytes) -> None:
    """Create a node home (as ``cmt init --genesis``) holding the bench genesis."""
    from cybermiles.cli.init import create_home
    from cybermiles.node.config import NodeConfig

    config = NodeConfig()
    create_home(home, bench_genesis(keys, token_code), config)


@contextlib.contextmanager
def cmt_node(
    keys: Sequence[BenchKey], token_code: bytes, block_time: float
) -> Iterator[tuple[NodeProcess, str]]:
    """A fresh ``cmt node`` on the bench genesis in a temp home: yields (process, http url)."""
    with tempfile.TemporaryDirectory(prefix="cmt-bench-rpc-") as tmp:
        home = Path(tmp) / "home"
        init_bench_home(home, keys, token_code)
        port = free_port()
        argv = cmt_argv(
            "node",
            "--home",
            str(home),
            "--rpc.addr",
            "127.0.0.1",
            "--rpc.port",
            str(port),
            "--block-time",
            str(block_time),
        )
        env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
        node = NodeProcess(argv, Path(tmp) / "node.log", env=env)
        try:
            node.wait_rpc(port)
            yield node, f"http://127.0.0.1:{port}/"
        finally:
            node.kill()


# --------------------------------------------------------------------------- JSON-RPC


def tx_hash_hex(raw: bytes) -> str:
    """0x-hash of a raw (typed or legacy) transaction: keccak256 of its bytes."""
    return "0x" + keccak256(raw).hex()


async def rpc_call(session: Any, url: str, method: str, params: list[Any]) -> Any:
    """One JSON-RPC call; an error answer raises BenchFailure."""
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
        answer = orjson.loads(await resp.read())
    if "error" in answer:
        raise BenchFailure(f"{method}: {answer['error']}")
    return answer["result"]


async def rpc_batch(session: Any, url: str, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
    """Results of ``calls`` sent as one JSON-RPC batch, in order; any error raises."""
    payload = [
        {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
    ]
    async with session.post(url, data=orjson.dumps(payload), headers=JSON_HEADERS) as resp:
        answers = orjson.loads(await resp.read())
    if not isinstance(answers, list) or len(answers) != len(calls):
        raise BenchFailure(f"bad batch answer: {str(answers)[:300]}")
    by_id = {a.get("id"): a for a in answers}
    out = []
    for i, (method, _) in enumerate(calls):
        answer = by_id.get(i, {"error": "missing answer"})
        if "error" in answer:
            raise BenchFailure(f"{method}: {answer['error']}")
        out.append(answer["result"])
    return out


def client_shares(raws: Sequence[bytes], clients: int) -> list[list[int]]:
    """Tx indexes per client: client c owns the senders with index % clients == c; each share
    keeps the global order, so every sender's txs stay in nonce order."""
    shares: list[list[int]] = [[] for _ in range(clients)]
    for k in range(len(raws)):
        shares[(k % ACCOUNTS) % clients].append(k)
    return shares


def batch_bodies(
    raws: Sequence[bytes], hashes: Sequence[str], share: Sequence[int], batch: int
) -> list[tuple[bytes, list[str]]]:
    """Pre-encoded ``eth_sendRawTransaction`` batch bodies of one client, with their tx hashes."""
    out = []
    for start in range(0, len(share), batch):
        chunk = share[start : start + batch]
        payload = [
            {
                "jsonrpc": "2.0",
                "id": i,
                "method": "eth_sendRawTransaction",
                "params": ["0x" + raws[k].hex()],
            }
            for i, k in enumerate(chunk)
        ]
        out.append((orjson.dumps(payload), [hashes[k] for k in chunk]))
    return out


def check_send_answers(answers: Any, hashes: Sequence[str]) -> None:
    """Every item of a send batch must answer its own tx hash."""
    if not isinstance(answers, list) or len(answers) != len(hashes):
        raise BenchFailure(f"eth_sendRawTransaction batch: bad answer {str(answers)[:300]}")
    for answer in answers:
        i = answer.get("id")
        if "error" in answer or not isinstance(i, int) or answer.get("result") != hashes[i]:
            tx = hashes[i] if isinstance(i, int) and 0 <= i < len(hashes) else "?"
            raise BenchFailure(f"eth_sendRawTransaction {tx} answered {answer}")


# --------------------------------------------------------------------------- commits


class HeadWatcher:
    """Stamps every new block (``newHeads`` over WebSocket) and maps its txs to that time."""

    def __init__(self, session: Any, url: str, expected: Sequence[str]) -> None:
        self.session = session
        self.url = url
        self.pending = set(expected)
        self.commit_time: dict[str, float] = {}
        self.block_of: dict[str, int] = {}
        self.blocks_with_txs: set[int] = set()
        self.last_progress = time.perf_counter()
        self.done = asyncio.Event()
        self._heads: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
        self._last_block: int | None = None
        self._ws: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        if not self.pending:
            self.done.set()

    async def start(self) -> None:
        """Connect and subscribe (answered before this returns), then listen in the background."""
        self._ws = await self.session.ws_connect(self.url.replace("http://", "ws://", 1))
        await self._ws.send_bytes(
            orjson.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
            )
        )
        answer = orjson.loads((await self._ws.receive()).data)
        if "result" not in answer:
            raise BenchFailure(f"eth_subscribe(newHeads): {answer}")
        self._tasks = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._fetch_blocks()),
        ]

    async def _listen(self) -> None:
        async for msg in self._ws:
            stamp = time.perf_counter()
            data = orjson.loads(msg.data)
            if data.get("method") == "eth_subscription":
                number = int(data["params"]["result"]["number"], 16)
                self._heads.put_nowait((number, stamp))

    async def _fetch_blocks(self) -> None:
        while True:
            number, stamp = await self._heads.get()
            first = number if self._last_block is None else self._last_block + 1
            for n in range(first, number + 1):  # a missed notification: stamp it with this one
                block = await rpc_call(
                    self.session, self.url, "eth_getBlockByNumber", [hex(n), False]
                )
                self._record(n, block["transactions"], stamp)
            self._last_block = max(number, self._last_block or 0)

    def _record(self, number: int, tx_hashes: Sequence[str], stamp: float) -> None:
        found = [h for h in tx_hashes if h in self.pending]
        if not found:
            return
        self.blocks_with_txs.add(number)
        for h in found:
            self.pending.discard(h)
            self.commit_time[h] = stamp
            self.block_of[h] = number
        self.last_progress = time.perf_counter()
        if not self.pending:
            self.done.set()

    async def wait_all(self, stall_timeout: float = STALL_TIMEOUT) -> None:
        """Return once every expected tx committed; BenchFailure if progress stalls."""
        while not self.done.is_set():
            for task in self._tasks:
                if task.done():
                    task.result()  # re-raise the listener's error
                    raise BenchFailure("the newHeads subscription ended")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), timeout=1.0)
            if time.perf_counter() - self.last_progress > stall_timeout:
                raise BenchFailure(
                    f"{len(self.pending)} transactions not committed after "
                    f"{stall_timeout:.0f}s without progress"
                )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._ws is not None:
            await self._ws.close()


def check_receipt(tx_hash: str, receipt: Any, block: int | None = None) -> int:
    """A receipt must exist with status 1 (and be in ``block`` if given); its block number."""
    if receipt is None:
        raise BenchFailure(f"tx {tx_hash}: no receipt")
    if receipt.get("status") != "0x1":
        raise BenchFailure(f"tx {tx_hash} failed: status {receipt.get('status')}")
    number = int(receipt["blockNumber"], 16)
    if block is not None and block != number:
        raise BenchFailure(f"tx {tx_hash}: receipt in block {number}, announced in {block}")
    return number


async def verify_receipts(session: Any, url: str, hashes: Sequence[str]) -> int:
    """``eth_getTransactionReceipt`` of every tx, in batches: each must have status 1.
    Returns the number of distinct blocks holding them."""
    blocks: set[int] = set()
    for start in range(0, len(hashes), RECEIPT_BATCH):
        chunk = hashes[start : start + RECEIPT_BATCH]
        calls = [("eth_getTransactionReceipt", [h]) for h in chunk]
        receipts = await rpc_batch(session, url, calls)
        blocks.update(check_receipt(h, r) for h, r in zip(chunk, receipts, strict=True))
    return len(blocks)


async def verify_block_receipts(session: Any, url: str, block_of: dict[str, int]) -> int:
    """``eth_getBlockReceipts`` of every block the listener saw (a few blocks per batch): every
    tx of ``block_of`` must be there with status 1. Returns the number of blocks.

    Per-block rather than per-tx: ``eth_getTransactionReceipt`` decodes its whole block's body
    and receipts on each call, quadratic over blocks of thousands of transactions."""
    numbers = sorted(set(block_of.values()))
    found: dict[str, Any] = {}
    for start in range(0, len(numbers), 4):
        calls = [("eth_getBlockReceipts", [hex(n)]) for n in numbers[start : start + 4]]
        for receipts in await rpc_batch(session, url, calls):
            for receipt in receipts or []:
                found[receipt["transactionHash"]] = receipt
    for tx_hash, number in block_of.items():
        check_receipt(tx_hash, found.get(tx_hash), number)
    return len(numbers)


# --------------------------------------------------------------------------- the cmt load


async def _send_client(
    session: Any, url: str, bodies: Sequence[tuple[bytes, list[str]]], sent: dict[str, float]
) -> float:
    """Send one client's batches, one in flight; return when its last answer arrived."""
    for body, hashes in bodies:
        stamp = time.perf_counter()
        for h in hashes:
            sent[h] = stamp
        async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
            if resp.status != 200:
                raise BenchFailure(f"HTTP {resp.status}: {(await resp.read())[:300]!r}")
            answers = orjson.loads(await resp.read())
        check_send_answers(answers, hashes)
    return time.perf_counter()


async def load_cmt(
    url: str, workload: str, raws: Sequence[bytes], clients: int, batch: int, node: NodeProcess
) -> LoadResult:
    """Run one timed load against a running ``cmt node`` at ``url`` and verify it."""
    import aiohttp

    hashes = [tx_hash_hex(raw) for raw in raws]
    bodies = [batch_bodies(raws, hashes, share, batch) for share in client_shares(raws, clients)]
    result = LoadResult("cmt", workload, len(raws), clients, batch)
    sent: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=clients + 4)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        watcher = HeadWatcher(session, url, hashes)
        await watcher.start()
        try:
            cpu_before = node.cpu_seconds()
            result.first_send = time.perf_counter()
            ends = await asyncio.gather(*(_send_client(session, url, b, sent) for b in bodies if b))
            result.last_send_done = max(ends)
            await watcher.wait_all()
            cpu_after = node.cpu_seconds()
        finally:
            await watcher.close()
        result.loadavg_after = loadavg()
        result.last_commit = max(watcher.commit_time.values())
        if cpu_before is not None and cpu_after is not None:
            result.node_cpu_s = cpu_after - cpu_before
        result.latencies = [watcher.commit_time[h] - sent[h] for h in hashes]
        result.blocks = await verify_block_receipts(session, url, watcher.block_of)
    return result


# --------------------------------------------------------------------------- driver


def run_cmt_workload(
    workload: str,
    raws: Sequence[bytes],
    keys: Sequence[BenchKey],
    token_code: bytes,
    clients: int,
    batch: int,
    block_time: float,
) -> LoadResult:
    """One run: a fresh node on the bench genesis, the timed load, the checks."""
    import aiohttp

    with cmt_node(keys, token_code, block_time) as (node, url):
        try:
            return asyncio.run(load_cmt(url, workload, raws, clients, batch, node))
        except (BenchFailure, aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
            raise BenchFailure(
                f"{workload}: {type(exc).__name__}: {exc}\n--- node log tail ---\n{node.tail()}"
            ) from exc


def run_rpc(
    txs: int = DEFAULT_TXS,
    clients: int = DEFAULT_CLIENTS,
    batch: int = DEFAULT_BATCH,
    block_time: float = DEFAULT_BLOCK_TIME,
    *,
    runs: int = 1,
    vs_hardhat: bool = False,
    workloads: Sequence[str] = WORKLOADS,
    artifact: str | Path | None = None,
    progress: bool = False,
    log: Log | None = None,
) -> RpcReport:
    """Run the RPC benchmark (module docstring); raise BenchFailure on wrong results."""
    if min(txs, clients, batch, runs) < 1 or block_time < 0:
        raise ValueError("txs, clients, batch and runs must be >= 1, block_time >= 0")
    say = log or (lambda _msg: None)
    machine = machine_info()
    keys = bench_keys(ACCOUNTS)
    token_code = load_token_code(artifact)
    gas_price = bench_genesis(keys[:1], token_code).params.min_gas_price
    results: dict[str, LoadResult] = {}
    all_tps: dict[str, list[float]] = {}
    hardhat_result: LoadResult | None = None
    with ProgressBars(progress) as bars:
        for workload in workloads:
            raws = sign_workload(
                workload, keys, txs, gas_price, bars.task(f"{workload}: signing", txs)
            )
            done = []
            for run in range(runs):
                say(f"{workload}: run {run + 1}/{runs} against cmt node ...")
                done.append(
                    run_cmt_workload(workload, raws, keys, token_code, clients, batch, block_time)
                )
                say(f"{workload}: {done[-1].tps:,.0f} tx/s")
            median = statistics.median_low([r.tps for r in done])
            results[workload] = next(r for r in done if r.tps == median)
            all_tps[workload] = [r.tps for r in done]
            if vs_hardhat and workload == "erc20":
                from .hardhat import run_hardhat_erc20

                say("erc20: against the Hardhat node ...")
                hardhat_result = run_hardhat_erc20(raws, keys, token_code, clients, log=say)
    machine["loadavg_1m_after"] = loadavg()
    return RpcReport(
        txs, clients, batch, block_time, runs, results, all_tps, hardhat_result, machine
    )


def render_table(report: RpcReport) -> Any:
    """A rich Table: one row per (node, workload); every run's tx/s in the caption."""
    from rich.table import Table

    m = report.machine
    lines = [
        f"{report.txs:,} txs per workload, {report.clients} clients, batches of "
        f"{report.batch}, block time {report.block_time}s",
        f"{m.get('cpu_count')} CPUs; load avg (1m) {m.get('loadavg_1m_before')} before, "
        f"{m.get('loadavg_1m_after')} after",
    ]
    if report.runs > 1:
        lines += [
            f"{w} runs: " + ", ".join(f"{x:,.0f}" for x in tps) + " tx/s"
            for w, tps in report.all_tps.items()
        ]
    ratio = report.hardhat_ratio
    if ratio is not None:
        lines.append(f"ERC20 vs Hardhat: {ratio:.2f}x")
    table = Table(title="cmt bench rpc: committed tx/s end to end", caption="\n".join(lines))
    for name in ("node", "workload", "tx/s", "p50 s", "p95 s", "blocks", "node CPU"):
        table.add_column(name, justify="left" if name in ("node", "workload") else "right")
    rows = list(report.results.values())
    if report.hardhat is not None:
        rows.append(report.hardhat)
    for r in rows:
        cpu = "-" if r.node_cpu_s is None else f"{r.node_cpu_s:.1f}s {r.node_cpu_s / r.wall:.0%}"
        table.add_row(
            r.target,
            r.workload,
            f"{r.tps:,.0f}",
            f"{r.p50:.3f}",
            f"{r.p95:.3f}",
            f"{r.blocks:,}",
            cpu,
        )
    return table


__all__ = [
    "CHAIN_ID",
    "DEFAULT_BATCH",
    "DEFAULT_BLOCK_TIME",
    "DEFAULT_CLIENTS",
    "DEFAULT_TXS",
    "LoadResult",
    "RpcReport",
    "render_table",
    "run_rpc",
]
