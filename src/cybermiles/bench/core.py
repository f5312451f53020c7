"""Core throughput benchmark: decode, admit and commit pre-signed transactions in-process.

Two workloads run on the same genesis (1,000 funded benchmark accounts and a TestToken ERC20
deployed *in genesis* with every account pre-funded):

* ``plain``: CMT value transfers between the accounts (seeded random recipients, value 1 wei
  to 1e6 wei, gas 21000, priced at ``min_gas_price`` so the free quota never applies);
* ``erc20``: ``transfer(address,uint256)`` calls on the token (gas 60000, same price).

For each workload N transactions are pre-signed (not timed): sender ``k % 1000`` with nonce
``k // 1000``. Then, on a fresh chain in a temporary data directory, the timed part:

1. ``decode_recover``: ``decode_transaction`` of every raw transaction (RLP + signature checks
   + sender recovery), on ``decode_threads`` threads as the node's RPC workers do (the
   secp256k1 recovery releases the GIL, so it overlaps across cores);
2. ``admission``: ``Mempool.add`` of every transaction (reads nonce/balance from the head state);
3. blocks, until the pool is empty: ``select`` (``Mempool.select(gas_limit, B)``),
   ``Blockchain.build_block`` split into its own ``execute`` / ``state_root`` /
   ``tx_receipt_roots`` / ``commit`` (header, body, receipts, indexes, LMDB commit + fsync)
   timings plus ``block_other`` (the rest of ``build_block``), and ``pool_update``
   (``node.producer.update_pool``, as the block producer does).

Committed tx/s = N / (wall time of 1 + 2 + 3). After the clock stops every result is checked
and any discrepancy raises :class:`BenchFailure`: every transaction included exactly once,
none rejected, every receipt status 1, each sender's final nonce, CMT conserved (accounts +
fees, which end in the community pool as the bench chain has no validators) and, for
``erc20``, the token balances' sum and totalSupply unchanged.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cybermiles.chain.genesis import Genesis, parse_genesis
from cybermiles.chain.transactions import Transaction, decode_transaction
from cybermiles.crypto.keccak import keccak256
from cybermiles.mempool import Mempool, MempoolConfig, MempoolError
from cybermiles.modules.addresses import COMMUNITY_POOL, STAKING
from cybermiles.node.blockchain import Blockchain, BuiltBlock
from cybermiles.node.node import HeadStateReader
from cybermiles.node.producer import update_pool

from .progress import Advance, ProgressBars
from .txgen import BenchKey, bench_keys, erc20_transfer_data, sign_dynamic_fee_tx

WORKLOADS = ("plain", "erc20")
DEFAULT_TXS = 20_000
DEFAULT_BLOCK_TXS = 5_000
DEFAULT_DECODE_THREADS = 2  # the node decodes on its RPC worker threads
ACCOUNTS = 1_000

CHAIN_ID = 18
GENESIS_TIMESTAMP = 1_700_000_000
BLOCK_GAS_LIMIT = 1_000_000_000
ACCOUNT_BALANCE = 10**24  # 1,000,000 CMT each
TOKEN_BALANCE = 10**24  # token units each holder starts with
TOKEN_ADDRESS = keccak256(b"cybermiles bench token")[:20]
COINBASE = STAKING  # as the node builds blocks: fees go to the block's reward pool
PLAIN_GAS = 21_000
ERC20_GAS = 60_000
SEED = 20_240_601

# TestToken storage layout (contracts/src/TestToken.sol): balances at 0, allowances 1, supply 2.
BALANCES_SLOT = 0
TOTAL_SUPPLY_SLOT = 2

PHASES = (
    "decode_recover",
    "admission",
    "select",
    "execute",
    "state_root",
    "tx_receipt_roots",
    "commit",
    "block_other",
    "pool_update",
)
BLOCK_TIMINGS = ("execute", "state_root", "tx_receipt_roots", "commit")


class BenchFailure(RuntimeError):
    """The benchmark's own results are wrong (a tx not committed, a failed receipt...)."""


# --------------------------------------------------------------------------- setup


def find_token_artifact() -> Path:
    """``contracts/build/TestToken.json`` of the source checkout this package runs from."""
    relative = Path("contracts/build/TestToken.json")
    starts = [Path(__file__).resolve().parent, Path.cwd().resolve()]
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / relative
            if candidate.is_file():
                return candidate
    raise BenchFailure(
        f"cannot find {relative} above {starts[0]} or the current directory; "
        "pass the TestToken artifact explicitly (--artifact)"
    )


def load_token_code(artifact: str | Path | None = None) -> bytes:
    """The TestToken runtime bytecode (``deployedBytecode``) from its build artifact."""
    path = Path(artifact) if artifact is not None else find_token_artifact()
    try:
        code_hex = json.loads(path.read_text())["deployedBytecode"]
    except (OSError, ValueError, KeyError) as exc:
        raise BenchFailure(f"{path}: not a usable TestToken artifact ({exc})") from exc
    code = bytes.fromhex(code_hex.removeprefix("0x"))
    if not code:
        raise BenchFailure(f"{path}: empty deployedBytecode")
    return code


def balance_slot(holder: bytes) -> int:
    """Storage slot of ``balanceOf[holder]``: ``keccak(pad32(holder) ++ pad32(0))``."""
    return int.from_bytes(
        keccak256(holder.rjust(32, b"\x00") + BALANCES_SLOT.to_bytes(32, "big")), "big"
    )


def bench_genesis(keys: Sequence[BenchKey], token_code: bytes) -> Genesis:
    """Genesis with ``keys`` funded in CMT and in a TestToken deployed at TOKEN_ADDRESS."""
    storage = {hex(balance_slot(k.address)): hex(TOKEN_BALANCE) for k in keys}
    storage[hex(TOTAL_SUPPLY_SLOT)] = hex(TOKEN_BALANCE * len(keys))
    alloc: dict[str, Any] = {
        "0x" + k.address.hex(): {"balance": hex(ACCOUNT_BALANCE)} for k in keys
    }
    alloc["0x" + TOKEN_ADDRESS.hex()] = {
        "balance": "0",
        "nonce": 1,
        "code": "0x" + token_code.hex(),
        "storage": storage,
    }
    return parse_genesis(
        {
            "chain_id": CHAIN_ID,
            "timestamp": GENESIS_TIMESTAMP,
            "params": {"block_gas_limit": BLOCK_GAS_LIMIT},
            "alloc": alloc,
        }
    )


def sign_workload(
    workload: str,
    keys: Sequence[BenchKey],
    count: int,
    gas_price: int,
    advance: Advance | None = None,
) -> list[bytes]:
    """Pre-sign ``count`` transactions of ``workload``: tx k is sender k % len(keys), nonce
    k // len(keys); recipients and amounts come from a fixed seed."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r} (known: {', '.join(WORKLOADS)})")
    rng = random.Random(f"{SEED}:{workload}")
    n_keys = len(keys)
    out: list[bytes] = []
    for k in range(count):
        sender = keys[k % n_keys]
        other = rng.randrange(n_keys - 1)
        recipient = keys[other + (other >= sender.index)].address  # never the sender itself
        amount = rng.randint(1, 10**6)
        if workload == "plain":
            to, value, gas, data = recipient, amount, PLAIN_GAS, b""
        else:
            to, value, gas, data = (
                TOKEN_ADDRESS,
                0,
                ERC20_GAS,
                erc20_transfer_data(recipient, amount),
            )
        out.append(
            sign_dynamic_fee_tx(
                sender.private_key,
                chain_id=CHAIN_ID,
                nonce=k // n_keys,
                max_priority_fee_per_gas=gas_price,
                max_fee_per_gas=gas_price,
                gas=gas,
                to=to,
                value=value,
                data=data,
            )
        )
        if advance is not None and (k + 1) % 500 == 0:
            advance(500)
    if advance is not None and count % 500:
        advance(count % 500)
    return out


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class WorkloadResult:
    """Timings of one run of one workload (seconds)."""

    workload: str
    txs: int
    block_txs: int
    blocks: int = 0
    cpu: float = 0.0  # process CPU time of the timed part (all threads), seconds
    phases: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))

    @property
    def wall(self) -> float:
        return sum(self.phases.values())

    @property
    def tps(self) -> float:
        return self.txs / self.wall if self.wall > 0 else 0.0

    @property
    def cpu_tps(self) -> float:
        """tx/s if the process had had the CPU to itself (less sensitive to a busy machine)."""
        return self.txs / self.cpu if self.cpu > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        n = max(self.txs, 1)
        return {
            "tps": round(self.tps, 1),
            "txs": self.txs,
            "blocks": self.blocks,
            "wall_ms": round(self.wall * 1e3, 3),
            "cpu_ms": round(self.cpu * 1e3, 3),
            "cpu_tps": round(self.cpu_tps, 1),
            "phases_ms": {k: round(v * 1e3, 3) for k, v in self.phases.items()},
            "us_per_tx": {k: round(v * 1e6 / n, 2) for k, v in self.phases.items()},
        }


# --------------------------------------------------------------------------- the timed run


def _mempool(chain: Blockchain, count: int, n_keys: int) -> Mempool:
    params = chain.params
    return Mempool(
        MempoolConfig(
            min_gas_price=params.min_gas_price,
            free_tx_quota=params.free_tx_quota,
            block_gas_limit=params.block_gas_limit,
            max_tx_size=params.max_tx_size,
            global_slots=max(100_000, count),
            account_slots=max(5_000, -(-count // n_keys)),
        ),
        HeadStateReader(chain),
    )


def _decode_chunk(raws: Sequence[bytes]) -> list[Transaction]:
    return [decode_transaction(raw, CHAIN_ID) for raw in raws]


def decode_all(raws: Sequence[bytes], threads: int) -> list[Transaction]:
    """Decode ``raws`` in order, split over ``threads`` threads."""
    if threads <= 1:
        return _decode_chunk(raws)
    size = max(1, -(-len(raws) // (threads * 4)))
    parts = [raws[i : i + size] for i in range(0, len(raws), size)]
    with ThreadPoolExecutor(threads, thread_name_prefix="decode") as pool:
        return [tx for part in pool.map(_decode_chunk, parts) for tx in part]


def run_workload(
    workload: str,
    raws: Sequence[bytes],
    genesis: Genesis,
    keys: Sequence[BenchKey],
    block_txs: int,
    *,
    data_parent: str | Path | None = None,
    advance: Advance | None = None,
    decode_threads: int = DEFAULT_DECODE_THREADS,
) -> WorkloadResult:
    """Decode, admit and commit ``raws`` on a fresh chain; check the outcome; return timings."""
    if block_txs < 1:
        raise ValueError("block_txs must be >= 1")
    result = WorkloadResult(workload, len(raws), block_txs)
    phases = result.phases
    with tempfile.TemporaryDirectory(prefix=f"cmt-bench-{workload}-", dir=data_parent) as tmp:
        chain = Blockchain(Path(tmp) / "data", genesis)
        try:
            pool = _mempool(chain, len(raws), len(keys))
            gas_limit = chain.params.block_gas_limit
            blocks: list[BuiltBlock] = []
            gc.collect()
            clock, cpu_clock = time.perf_counter, time.process_time
            cpu_start = cpu_clock()

            t0 = clock()
            txs = decode_all(raws, decode_threads)
            t1 = clock()
            phases["decode_recover"] = t1 - t0

            add = pool.add
            try:
                for tx in txs:
                    add(tx)
            except MempoolError as exc:
                raise BenchFailure(f"{workload}: the pool refused a transaction: {exc!r}") from exc
            phases["admission"] = clock() - t1

            timestamp = GENESIS_TIMESTAMP
            while True:
                b0 = clock()
                selected = pool.select(gas_limit, block_txs)
                b1 = clock()
                phases["select"] += b1 - b0
                if not selected:
                    break
                timestamp += 1
                block = chain.build_block(
                    selected, timestamp=timestamp, coinbase=COINBASE, max_txs=block_txs
                )
                b2 = clock()
                update_pool(pool, block)
                b3 = clock()
                timings = block.timings
                inside = 0.0
                for name in BLOCK_TIMINGS:
                    phases[name] += timings[name]
                    inside += timings[name]
                phases["block_other"] += (b2 - b1) - inside
                phases["pool_update"] += b3 - b2
                blocks.append(block)
                if advance is not None:
                    advance(len(block.transactions))
                if not block.transactions:
                    break  # nothing applied: the checks below say why
            result.cpu = cpu_clock() - cpu_start
            result.blocks = len(blocks)

            _check(workload, chain, pool, keys, txs, blocks)
        finally:
            chain.close()
    return result


def _check(
    workload: str,
    chain: Blockchain,
    pool: Mempool,
    keys: Sequence[BenchKey],
    txs: Sequence[Transaction],
    blocks: Sequence[BuiltBlock],
) -> None:
    """Raise BenchFailure unless every transaction committed successfully and value is conserved."""
    n_keys = len(keys)
    for k, tx in enumerate(txs):
        if tx.sender != keys[k % n_keys].address:
            raise BenchFailure(f"{workload}: tx {k} recovered sender 0x{tx.sender.hex()}")
    for block in blocks:
        if block.rejected:
            tx, why = block.rejected[0]
            raise BenchFailure(
                f"{workload}: block {block.header.block_number} rejected "
                f"{len(block.rejected)} txs, first 0x{tx.hash.hex()}: {why}"
            )
        for tx, receipt in zip(block.transactions, block.receipts, strict=True):
            if receipt.status != 1:
                raise BenchFailure(f"{workload}: tx 0x{tx.hash.hex()} failed (receipt status 0)")
            if workload == "erc20" and len(receipt.logs) != 1:
                raise BenchFailure(
                    f"{workload}: tx 0x{tx.hash.hex()} emitted {len(receipt.logs)} logs"
                )
    included = [tx.hash for block in blocks for tx in block.transactions]
    if len(included) != len(txs) or set(included) != {tx.hash for tx in txs}:
        raise BenchFailure(
            f"{workload}: {len(included)} of {len(txs)} transactions committed "
            f"({len(set(included))} distinct), {len(pool)} left in the pool"
        )
    if len(pool):
        raise BenchFailure(f"{workload}: {len(pool)} transactions left in the pool")

    sent = [0] * n_keys
    for k in range(len(txs)):
        sent[k % n_keys] += 1
    gas_used = sum(block.header.gas_used for block in blocks)
    with chain.state_at() as state:
        for key, count in zip(keys, sent, strict=True):
            if state.get_nonce(key.address) != count:
                raise BenchFailure(
                    f"{workload}: 0x{key.address.hex()} nonce {state.get_nonce(key.address)}, "
                    f"expected {count}"
                )
        # No validators in the bench genesis: the end of each block moves the fees on from the
        # coinbase (the staking module) to the community pool.
        fees = state.get_balance(COMMUNITY_POOL)
        cmt_total = sum(state.get_balance(key.address) for key in keys) + fees
        if cmt_total != ACCOUNT_BALANCE * n_keys:
            raise BenchFailure(f"{workload}: CMT not conserved ({cmt_total} != initial)")
        if fees != gas_used * chain.params.min_gas_price:
            raise BenchFailure(f"{workload}: coinbase got {fees} wei for {gas_used} gas")
        token_total = sum(state.get_storage(TOKEN_ADDRESS, balance_slot(k.address)) for k in keys)
        if token_total != TOKEN_BALANCE * n_keys:
            raise BenchFailure(f"{workload}: token balances sum to {token_total}, not the initial")
        if state.get_storage(TOKEN_ADDRESS, TOTAL_SUPPLY_SLOT) != TOKEN_BALANCE * n_keys:
            raise BenchFailure(f"{workload}: token totalSupply changed")


# --------------------------------------------------------------------------- driver


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        # Load before the run: above the CPU count, other processes compete with the bench.
        info["loadavg_1m_before"] = round(os.getloadavg()[0], 2)
    return info


@dataclass(slots=True)
class CoreReport:
    """Results of ``run_core``: per workload, the run with the median tx/s and every run's tx/s."""

    txs: int
    block_txs: int
    runs: int
    results: dict[str, WorkloadResult]
    all_tps: dict[str, list[float]]
    machine: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"{w}_tps": round(r.tps, 1) for w, r in self.results.items()}
        for workload, result in self.results.items():
            out[workload] = result.to_json()
            out[workload]["runs_tps"] = [round(x, 1) for x in self.all_tps[workload]]
        out.update(
            txs=self.txs,
            block_txs=self.block_txs,
            runs=self.runs,
            accounts=ACCOUNTS,
            machine=self.machine,
        )
        return out


def run_core(
    txs: int = DEFAULT_TXS,
    block_txs: int = DEFAULT_BLOCK_TXS,
    *,
    runs: int = 1,
    workloads: Iterable[str] = WORKLOADS,
    artifact: str | Path | None = None,
    data_parent: str | Path | None = None,
    progress: bool = False,
    decode_threads: int = DEFAULT_DECODE_THREADS,
) -> CoreReport:
    """Run the core benchmark (see the module docstring); raise BenchFailure on wrong results."""
    if txs < 1 or block_txs < 1 or runs < 1:
        raise ValueError("txs, block_txs and runs must be >= 1")
    workloads = tuple(workloads)
    machine = machine_info()
    keys = bench_keys(ACCOUNTS)
    genesis = bench_genesis(keys, load_token_code(artifact))
    gas_price = genesis.params.min_gas_price
    results: dict[str, WorkloadResult] = {}
    all_tps: dict[str, list[float]] = {}
    with ProgressBars(progress) as bars:
        for workload in workloads:
            raws = sign_workload(
                workload, keys, txs, gas_price, bars.task(f"{workload}: signing", txs)
            )
            done: list[WorkloadResult] = []
            for run in range(runs):
                label = f"{workload}: committing" + (f" {run + 1}/{runs}" if runs > 1 else "")
                done.append(
                    run_workload(
                        workload,
                        raws,
                        genesis,
                        keys,
                        block_txs,
                        data_parent=data_parent,
                        advance=bars.task(label, txs),
                        decode_threads=decode_threads,
                    )
                )
            del raws
            median = statistics.median_low([r.tps for r in done])
            results[workload] = next(r for r in done if r.tps == median)
            all_tps[workload] = [r.tps for r in done]
    return CoreReport(txs, block_txs, runs, results, all_tps, machine)


def render_table(result: WorkloadResult, runs_tps: Sequence[float] = ()) -> Any:
    """A rich Table of one workload's phases (ms, µs/tx, share of the wall time)."""
    from rich.table import Table

    caption = (
        f"{result.txs:,} txs in {result.blocks} blocks of <= {result.block_txs:,}; "
        f"CPU time {result.cpu * 1e3:,.0f} ms = {result.cpu_tps:,.0f} tx/s of CPU"
    )
    if len(runs_tps) > 1:
        caption += f"; tx/s of the {len(runs_tps)} runs: " + ", ".join(
            f"{x:,.0f}" for x in runs_tps
        )
    table = Table(title=f"{result.workload}: {result.tps:,.0f} committed tx/s", caption=caption)
    table.add_column("phase")
    table.add_column("ms", justify="right")
    table.add_column("µs/tx", justify="right")
    table.add_column("share", justify="right")
    wall = result.wall or 1.0
    n = max(result.txs, 1)
    for name, seconds in result.phases.items():
        table.add_row(
            name, f"{seconds * 1e3:,.1f}", f"{seconds * 1e6 / n:,.1f}", f"{seconds / wall:.0%}"
        )
    table.add_section()
    table.add_row("total", f"{result.wall * 1e3:,.1f}", f"{result.wall * 1e6 / n:,.1f}", "100%")
    return table
