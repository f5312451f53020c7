"""BFT network benchmark: committed tx/s and finality latency of a local validator testnet.

One run:

1. a temporary testnet (``cmt testnet init`` as a library, :func:`cli.testnet.init_testnet`)
   with ``validators`` validators on loopback, whose genesis also funds the 1,000 benchmark
   accounts of ``cmt bench core`` (block gas limit 1e9, so blocks are limited by
   ``max_block_txs``); bench chain id 18, consensus timeouts :data:`BENCH_TIMEOUTS` unless given;
2. the nodes start (``cmt node`` processes, as ``cmt testnet start``) and the bench waits until
   every node answers RPC and the chain is past height :data:`WARM_HEIGHT`;
3. N plain transfers are pre-signed (not timed; tx ``k`` is sender ``k % 1000`` with nonce
   ``k // 1000``). Sender ``s`` always goes to node ``s % validators``; each node gets
   ``clients`` asyncio clients (aiohttp, one keep-alive connection, one batch in flight),
   client ``c`` owning that node's senders with ``(s // validators) % clients == c``;
4. the load is paced: tx ``k`` is due ``k / rate`` seconds after the start (``rate`` 0: all at
   once); a client sends whatever is due, at most ``batch`` per JSON-RPC batch. Each tx's submit
   time is the moment its batch was sent;
5. a WebSocket ``newHeads`` listener on node 0 stamps every block when its notification arrives
   and maps the block's tx hashes to that time (the commit time: a block is final when
   committed). Meanwhile ``cmt_consensusState`` of every node is polled to spot heights that
   needed more than one round.

Results: **tps** = committed txs / time over the steady window (the txs of every bench block
after the first one, divided by the time from the first bench block to the last); finality
p50/p95 = commit time - submit time (nearest rank); also the overall tx/s (N / (last commit -
first send)), blocks and txs per block, heights with round > 0, per-node CPU share (from
/proc) and the 1-minute load average. Afterwards every tx must have a status-1 receipt in the
block the listener saw and every node must hold the same hash at the last bench block, else
:class:`~cybermiles.bench.core.BenchFailure`.

All node processes are stopped and the temporary directory deleted at the end, also on
Ctrl-C or an error (``keep`` keeps the directory and its ``nodeI/node.log`` files).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .core import (
    ACCOUNT_BALANCE,
    ACCOUNTS,
    BLOCK_GAS_LIMIT,
    CHAIN_ID,
    BenchFailure,
    machine_info,
    sign_workload,
)
from .progress import ProgressBars
from .rpc import (
    JSON_HEADERS,
    HeadWatcher,
    check_send_answers,
    loadavg,
    percentile,
    process_cpu_seconds,
    tx_hash_hex,
    verify_block_receipts,
)
from .txgen import bench_keys

DEFAULT_VALIDATORS = 4
DEFAULT_RATE = 1_100.0  # offered tx/s over all nodes: 10% above the target (no cap by the offer)
DEFAULT_TXS = 27_500  # ~25 s at the default rate
DEFAULT_CLIENTS = 1  # per node
DEFAULT_BATCH = 100
DEFAULT_BLOCK_TXS = 2_000  # bounds a height's work: bigger blocks ran past the propose timeout
GAS_PRICE = 10**9  # the testnet's min_gas_price (1 gwei)
WARM_HEIGHT = 2  # wait until every node committed this height before loading
STARTUP_TIMEOUT = 120.0
STARTUP_ATTEMPTS = 3  # fresh ports each time a node could not bind its port
STATUS_POLL = 0.2  # seconds between cmt_consensusState polls
# Loopback timeouts for the benchmark: a block every ~commit_ms + the round's work. The propose
# timeout covers building, sending and checking a full block on a busy 2-core machine.
BENCH_TIMEOUTS: dict[str, int] = {
    "propose_ms": 3000,
    "propose_delta_ms": 1000,
    "prevote_ms": 1000,
    "prevote_delta_ms": 500,
    "precommit_ms": 1000,
    "precommit_delta_ms": 500,
    "commit_ms": 200,
}

Log = Callable[[str], None]


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class NetworkResult:
    """One run; times are ``time.perf_counter`` seconds."""

    validators: int
    txs: int
    rate: float
    first_send: float = 0.0
    last_send_done: float = 0.0
    last_commit: float = 0.0
    latencies: list[float] = field(default_factory=list)
    blocks: list[tuple[int, float, int]] = field(default_factory=list)  # (number, stamp, txs)
    rounds_gt0: list[int] = field(default_factory=list)  # heights seen at round > 0
    max_round: int = 0
    node_cpu_s: list[float | None] = field(default_factory=list)
    loadavg_before: float | None = None
    loadavg_after: float | None = None

    @property
    def wall(self) -> float:
        return self.last_commit - self.first_send

    @property
    def tps_overall(self) -> float:
        return self.txs / self.wall if self.wall > 0 else 0.0

    @property
    def tps(self) -> float:
        """Committed tx/s over the steady window (see the module docstring)."""
        if len(self.blocks) < 2:
            return self.tps_overall
        span = self.blocks[-1][1] - self.blocks[0][1]
        committed = sum(n for _, _, n in self.blocks[1:])
        return committed / span if span > 0 else self.tps_overall

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 95)

    def cpu_shares(self) -> list[float | None]:
        return [None if c is None or self.wall <= 0 else c / self.wall for c in self.node_cpu_s]

    def to_json(self) -> dict[str, Any]:
        n_blocks = len(self.blocks)
        return {
            "tps": round(self.tps, 1),
            "finality_p50_s": round(self.p50, 3),
            "finality_p95_s": round(self.p95, 3),
            "finality_max_s": round(max(self.latencies, default=0.0), 3),
            "tps_overall": round(self.tps_overall, 1),
            "txs": self.txs,
            "committed": sum(n for _, _, n in self.blocks),
            "offered_rate": self.rate,
            "wall_s": round(self.wall, 3),
            "send_s": round(self.last_send_done - self.first_send, 3),
            "blocks": n_blocks,
            "avg_txs_per_block": round(self.txs / n_blocks, 1) if n_blocks else 0.0,
            "max_txs_per_block": max((n for _, _, n in self.blocks), default=0),
            "rounds_gt0": len(self.rounds_gt0),
            "max_round": self.max_round,
            "node_cpu_s": [None if c is None else round(c, 2) for c in self.node_cpu_s],
            "node_cpu_share": [None if c is None else round(c, 2) for c in self.cpu_shares()],
            "loadavg_1m_before": self.loadavg_before,
            "loadavg_1m_after": self.loadavg_after,
        }


@dataclass(slots=True)
class NetworkReport:
    validators: int
    txs: int
    rate: float
    clients: int
    batch: int
    block_txs: int
    timeouts: dict[str, int]
    runs: list[NetworkResult]
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> NetworkResult:
        tps = statistics.median_low([r.tps for r in self.runs])
        return next(r for r in self.runs if r.tps == tps)

    def to_json(self) -> dict[str, Any]:
        median = self.median
        out = median.to_json()
        out.update(
            validators=self.validators,
            clients_per_node=self.clients,
            batch=self.batch,
            block_txs=self.block_txs,
            timeouts=self.timeouts,
            runs=len(self.runs),
            runs_tps=[round(r.tps, 1) for r in self.runs],
            runs_p50_s=[round(r.p50, 3) for r in self.runs],
            runs_p95_s=[round(r.p95, 3) for r in self.runs],
            median_p50_s=round(statistics.median(r.p50 for r in self.runs), 3),
            median_p95_s=round(statistics.median(r.p95 for r in self.runs), 3),
            machine=self.machine,
        )
        return out


# --------------------------------------------------------------------------- testnet


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_range(count: int, avoid: set[int] | frozenset[int] = frozenset()) -> int:
    """A base port with ``count`` consecutive free loopback ports, none in ``avoid``."""
    for _ in range(500):
        base = random.randrange(20_000, 60_000)
        ports = range(base, base + count)
        if not avoid.intersection(ports) and all(_port_free(p) for p in ports):
            return base
    raise BenchFailure(f"no {count} consecutive free loopback ports found")


def init_bench_testnet(
    home: Path,
    validators: int,
    *,
    accounts: int = ACCOUNTS,
    block_txs: int = DEFAULT_BLOCK_TXS,
    timeouts: dict[str, int] | None = None,
    show_progress: bool = False,
) -> list[Any]:
    """Write a testnet in ``home`` whose genesis also funds the bench accounts; returns its
    planned nodes (``cli.testnet.PlannedNode``)."""
    from cybermiles.cli.testnet import init_testnet
    from cybermiles.node.config import NodeConfig

    keys = bench_keys(accounts)
    alloc = {"0x" + k.address.hex(): {"balance": hex(ACCOUNT_BALANCE)} for k in keys}
    p2p = free_port_range(validators)
    rpc = free_port_range(validators, avoid=set(range(p2p, p2p + validators)))

    def configure(config: NodeConfig) -> None:
        config.mining.max_block_txs = block_txs

    return init_testnet(
        home,
        validators=validators,
        chain_id=CHAIN_ID,
        base_port=p2p,
        rpc_base_port=rpc,
        accounts=0,
        show_progress=show_progress,
        extra_alloc=alloc,
        params={"block_gas_limit": BLOCK_GAS_LIMIT},
        timeouts=dict(BENCH_TIMEOUTS if timeouts is None else timeouts),
        configure=configure,
    )


def wait_ready(nodes: Sequence[Any], timeout: float = STARTUP_TIMEOUT) -> None:
    """Until every node answers RPC with a head at :data:`WARM_HEIGHT` or above."""
    from cybermiles.cli.testnet import poll_node

    deadline = time.monotonic() + timeout
    while True:
        now = time.monotonic()
        for node in nodes:
            poll_node(node, now)
            if node.exit_code is not None:
                raise BenchFailure(
                    f"{node.name} exited with {node.exit_code} during startup:\n"
                    + "\n".join(node.log_tail(30))
                )
        if all(n.height is not None and n.height >= WARM_HEIGHT for n in nodes):
            return
        if now > deadline:
            heights = ", ".join(f"{n.name}={n.height}" for n in nodes)
            raise BenchFailure(f"the testnet did not reach height {WARM_HEIGHT} ({heights})")
        time.sleep(0.25)


# --------------------------------------------------------------------------- load


def client_shares(n_txs: int, validators: int, clients: int) -> list[list[list[int]]]:
    """``shares[node][client]``: the tx indexes (increasing, so nonce order per sender)."""
    shares: list[list[list[int]]] = [[[] for _ in range(clients)] for _ in range(validators)]
    for k in range(n_txs):
        sender = k % ACCOUNTS
        shares[sender % validators][(sender // validators) % clients].append(k)
    return shares


async def _send_client(
    session: Any,
    url: str,
    share: Sequence[int],
    params: Sequence[bytes],
    hashes: Sequence[str],
    rate: float,
    batch: int,
    t0: float,
    sent: list[float],
) -> float:
    """Send ``share`` paced at ``rate`` (tx ``k`` due at ``t0 + k / rate``), one batch in
    flight; returns when the last answer arrived."""
    pos = 0
    dues = [t0 + k / rate for k in share] if rate > 0 else None
    while pos < len(share):
        now = time.perf_counter()
        if dues is None:
            end = min(len(share), pos + batch)
        else:
            end = min(bisect.bisect_right(dues, now, lo=pos), pos + batch)
            if end == pos:
                await asyncio.sleep(max(0.0, dues[pos] - now))
                continue
        chunk = share[pos:end]
        body = (
            b"["
            + b",".join(
                b'{"jsonrpc":"2.0","id":%d,"method":"eth_sendRawTransaction","params":["%s"]}'
                % (i, params[k])
                for i, k in enumerate(chunk)
            )
            + b"]"
        )
        stamp = time.perf_counter()
        for k in chunk:
            sent[k] = stamp
        async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
            if resp.status != 200:
                raise BenchFailure(f"HTTP {resp.status}: {(await resp.read())[:300]!r}")
            answers = orjson.loads(await resp.read())
        check_send_answers(answers, [hashes[k] for k in chunk])
        pos = end
    return time.perf_counter()


class RoundWatcher:
    """Polls ``cmt_consensusState`` of every node; remembers heights seen at round > 0."""

    def __init__(self, session: Any, urls: Sequence[str]) -> None:
        self.session = session
        self.urls = urls
        self.heights: set[int] = set()
        self.max_round = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _poll(self, url: str) -> None:
        body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "cmt_consensusState"})
        with contextlib.suppress(Exception):
            async with self.session.post(url, data=body, headers=JSON_HEADERS) as resp:
                state = orjson.loads(await resp.read()).get("result") or {}
            height, rnd = state.get("height"), state.get("round")
            if isinstance(rnd, str):
                rnd = int(rnd, 16)
            if isinstance(height, str):
                height = int(height, 16)
            if isinstance(rnd, int) and rnd > 0 and isinstance(height, int):
                self.heights.add(height)
                self.max_round = max(self.max_round, rnd)

    async def _run(self) -> None:
        while True:
            await asyncio.gather(*(self._poll(u) for u in self.urls))
            await asyncio.sleep(STATUS_POLL)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def _same_block(session: Any, urls: Sequence[str], number: int) -> None:
    """Every node must hold the same block ``number`` (waits up to 30 s for laggards)."""
    hashes: dict[str, str] = {}
    deadline = time.monotonic() + 30
    for url in urls:
        while True:
            body = orjson.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_getBlockByNumber",
                    "params": [hex(number), False],
                }
            )
            async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
                block = orjson.loads(await resp.read()).get("result")
            if isinstance(block, dict):
                hashes[url] = block["hash"]
                break
            if time.monotonic() > deadline:
                raise BenchFailure(f"{url} did not reach block {number}")
            await asyncio.sleep(0.2)
    if len(set(hashes.values())) != 1:
        raise BenchFailure(f"nodes disagree on block {number}: {hashes}")


async def run_load(
    nodes: Sequence[Any],
    raws: Sequence[bytes],
    rate: float,
    clients: int,
    batch: int,
) -> NetworkResult:
    """The timed load against running nodes (``cli.testnet.NodeProcess``) and its checks."""
    import aiohttp

    validators = len(nodes)
    urls = [n.rpc_url.rstrip("/") + "/" for n in nodes]
    hashes = [tx_hash_hex(raw) for raw in raws]
    params = [b"0x" + raw.hex().encode() for raw in raws]
    shares = client_shares(len(raws), validators, clients)
    sent = [0.0] * len(raws)
    result = NetworkResult(validators, len(raws), rate)
    pids = [n.process.pid for n in nodes]
    connector = aiohttp.TCPConnector(limit=validators * (clients + 2) + 4)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        watcher = HeadWatcher(session, urls[0], hashes)
        await watcher.start()
        rounds = RoundWatcher(session, urls)
        rounds.start()
        try:
            result.loadavg_before = loadavg()
            cpu_before = [process_cpu_seconds(p) for p in pids]
            t0 = result.first_send = time.perf_counter()
            ends = await asyncio.gather(
                *(
                    _send_client(session, urls[i], share, params, hashes, rate, batch, t0, sent)
                    for i in range(validators)
                    for share in shares[i]
                    if share
                )
            )
            result.last_send_done = max(ends)
            await watcher.wait_all()
            cpu_after = [process_cpu_seconds(p) for p in pids]
            result.loadavg_after = loadavg()
        finally:
            await rounds.stop()
            await watcher.close()
        result.node_cpu_s = [
            None if a is None or b is None else a - b
            for a, b in zip(cpu_after, cpu_before, strict=True)
        ]
        result.last_commit = max(watcher.commit_time.values())
        result.latencies = [watcher.commit_time[h] - sent[k] for k, h in enumerate(hashes)]
        per_block: dict[int, list[float]] = {}
        for h, number in watcher.block_of.items():
            per_block.setdefault(number, []).append(watcher.commit_time[h])
        result.blocks = sorted((n, stamps[0], len(stamps)) for n, stamps in per_block.items())
        first, last = result.blocks[0][0], result.blocks[-1][0]
        result.rounds_gt0 = sorted(h for h in rounds.heights if first <= h <= last)
        result.max_round = rounds.max_round
        await verify_block_receipts(session, urls[0], watcher.block_of)
        await _same_block(session, urls, last)
    return result


# --------------------------------------------------------------------------- driver


def run_once(
    raws: Sequence[bytes],
    *,
    validators: int,
    rate: float,
    clients: int,
    batch: int,
    block_txs: int,
    timeouts: dict[str, int],
    keep: bool,
    show_progress: bool,
    say: Log,
) -> NetworkResult:
    """One run on a fresh temporary testnet (cleaned up unless ``keep``)."""
    from cybermiles.cli.testnet import NodeProcess, start_children, stop_children

    tmp = Path(tempfile.mkdtemp(prefix="cmt-bench-network-"))
    nodes: list[NodeProcess] = []
    try:
        for attempt in range(1, STARTUP_ATTEMPTS + 1):
            home = tmp / f"testnet{attempt}"
            say(f"init: {validators} validators in {home}")
            planned = init_bench_testnet(
                home,
                validators,
                block_txs=block_txs,
                timeouts=timeouts,
                show_progress=show_progress,
            )
            nodes = [
                NodeProcess(f"node{p.index}", p.home, f"http://127.0.0.1:{p.rpc_port}")
                for p in planned
            ]
            start_children(nodes)
            say("waiting for the nodes to commit blocks ...")
            try:
                wait_ready(nodes)
                break
            except BenchFailure as exc:
                # A port found free at init was taken by another process since: new ports.
                if "address already in use" not in str(exc) or attempt == STARTUP_ATTEMPTS:
                    raise
                say("a port was taken meanwhile: retrying on other ports")
                stop_children(nodes)
        say(f"load: {len(raws):,} txs at {rate:g} tx/s ...")
        try:
            return asyncio.run(run_load(nodes, raws, rate, clients, batch))
        except BenchFailure as exc:
            tails = "\n".join(f"--- {n.name} ---\n" + "\n".join(n.log_tail(8)) for n in nodes)
            raise BenchFailure(f"{exc}\n{tails}") from exc
    finally:
        stop_children(nodes)
        if keep:
            say(f"kept {tmp} (node logs in nodeI/node.log)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_network(
    validators: int = DEFAULT_VALIDATORS,
    txs: int = DEFAULT_TXS,
    rate: float = DEFAULT_RATE,
    *,
    clients: int = DEFAULT_CLIENTS,
    batch: int = DEFAULT_BATCH,
    block_txs: int = DEFAULT_BLOCK_TXS,
    timeouts: dict[str, int] | None = None,
    runs: int = 1,
    keep: bool = False,
    progress: bool = False,
    log: Log | None = None,
) -> NetworkReport:
    """Run the network benchmark ``runs`` times (module docstring)."""
    if min(validators, txs, clients, batch, runs, block_txs) < 1 or rate < 0:
        raise ValueError("validators, txs, clients, batch, runs, block_txs must be >= 1")
    say = log or (lambda _msg: None)
    chosen = dict(BENCH_TIMEOUTS if timeouts is None else timeouts)
    machine = machine_info()
    keys = bench_keys(ACCOUNTS)
    results = []
    with ProgressBars(progress) as bars:
        raws = sign_workload("plain", keys, txs, GAS_PRICE, bars.task("signing", txs))
    for run in range(runs):
        if runs > 1:
            say(f"run {run + 1}/{runs}")
        results.append(
            run_once(
                raws,
                validators=validators,
                rate=rate,
                clients=clients,
                batch=batch,
                block_txs=block_txs,
                timeouts=chosen,
                keep=keep,
                show_progress=progress,
                say=say,
            )
        )
        r = results[-1]
        say(f"{r.tps:,.0f} tx/s, finality p50 {r.p50:.2f}s p95 {r.p95:.2f}s")
    machine["loadavg_1m_after"] = loadavg()
    return NetworkReport(validators, txs, rate, clients, batch, block_txs, chosen, results, machine)


def render_table(report: NetworkReport) -> Any:
    """A rich Table: one row per run, the median run marked."""
    from rich.table import Table

    m = report.machine
    median = report.median
    caption = [
        f"{report.validators} validators, {report.txs:,} plain txs offered at "
        f"{report.rate:g} tx/s, {report.clients} client(s)/node, batches of {report.batch}, "
        f"max {report.block_txs:,} txs/block",
        "timeouts ms: " + ", ".join(f"{k[:-3]} {v}" for k, v in report.timeouts.items()),
        f"{m.get('cpu_count')} CPUs; load avg (1m) {m.get('loadavg_1m_before')} before, "
        f"{m.get('loadavg_1m_after')} after",
    ]
    if len(report.runs) > 1:
        caption.append(
            "median: "
            f"{median.tps:,.0f} tx/s, p50 "
            f"{statistics.median(r.p50 for r in report.runs):.2f}s, p95 "
            f"{statistics.median(r.p95 for r in report.runs):.2f}s"
        )
    table = Table(
        title="cmt bench network: committed tx/s and finality", caption="\n".join(caption)
    )
    for name in (
        "run",
        "tx/s",
        "overall",
        "p50 s",
        "p95 s",
        "blocks",
        "txs/block",
        "rounds>0",
        "node CPU",
        "load 1m",
    ):
        table.add_column(name, justify="right")
    for i, r in enumerate(report.runs):
        j = r.to_json()
        cpu = " ".join("-" if c is None else f"{c:.0%}" for c in r.cpu_shares())
        table.add_row(
            f"{i + 1}{'*' if r is median and len(report.runs) > 1 else ''}",
            f"{r.tps:,.0f}",
            f"{r.tps_overall:,.0f}",
            f"{r.p50:.2f}",
            f"{r.p95:.2f}",
            str(j["blocks"]),
            f"{j['avg_txs_per_block']:,.0f}",
            str(j["rounds_gt0"]),
            cpu,
            f"{r.loadavg_before} -> {r.loadavg_after}",
        )
    return table


__all__ = [
    "BENCH_TIMEOUTS",
    "DEFAULT_RATE",
    "DEFAULT_TXS",
    "DEFAULT_VALIDATORS",
    "NetworkReport",
    "NetworkResult",
    "render_table",
    "run_network",
]
