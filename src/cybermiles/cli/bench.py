"""`cmt bench ...`: in-process performance benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cybermiles.bench.core import (
    DEFAULT_BLOCK_TXS,
    DEFAULT_DECODE_THREADS,
    DEFAULT_TXS,
    BenchFailure,
    render_table,
    run_core,
)
from cybermiles.bench.rpc import DEFAULT_BATCH, DEFAULT_BLOCK_TIME, DEFAULT_CLIENTS
from cybermiles.bench.rpc import DEFAULT_TXS as RPC_DEFAULT_TXS

# Options both benchmarks take.
runs_option = click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Timed runs per workload, each on a fresh chain with the same pre-signed txs; the "
    "run with the median tx/s is reported.",
)
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Also print the results as one JSON object on the last line of stdout.",
)
artifact_option = click.option(
    "--artifact",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="TestToken build artifact (default: contracts/build/TestToken.json of the checkout).",
)
no_progress_option = click.option(
    "--no-progress", is_flag=True, help="No progress bars or status lines (they go to stderr)."
)


@click.group("bench")
def bench_group() -> None:
    """Benchmarks (figures depend on the machine; run on an idle one)."""


@bench_group.command("core")
@click.option(
    "--txs",
    "txs",
    type=click.IntRange(min=1),
    default=DEFAULT_TXS,
    show_default=True,
    help="Transactions per workload.",
)
@click.option(
    "--block-txs",
    type=click.IntRange(min=1),
    default=DEFAULT_BLOCK_TXS,
    show_default=True,
    help="Maximum transactions per block.",
)
@runs_option
@json_option
@artifact_option
@click.option(
    "--data-dir",
    "data_parent",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Where to create the temporary chains (default: the system temp dir); "
    "the disk matters, each block ends with an fsync.",
)
@click.option(
    "--decode-threads",
    type=click.IntRange(min=1),
    default=DEFAULT_DECODE_THREADS,
    show_default=True,
    help="Threads decoding and recovering senders (the node uses its RPC worker threads).",
)
@no_progress_option
def core_command(
    txs: int,
    block_txs: int,
    runs: int,
    as_json: bool,
    artifact: Path | None,
    data_parent: Path | None,
    decode_threads: int,
    no_progress: bool,
) -> None:
    """Committed transactions per second of the node core, in process (no RPC, no network).

    Two workloads on a genesis of 1,000 funded accounts: `plain` CMT transfers (gas 21000)
    and `erc20` ERC20 transfer() calls on a TestToken deployed in genesis (gas 60000), both priced
    at min_gas_price. For each, TXS transactions are pre-signed (not timed); then, on a fresh
    chain in a temporary data directory, the clock runs over:

    \b
      decode_recover    decode_transaction of every tx (RLP, signature, sender recovery)
                        on DECODE_THREADS threads
      admission         Mempool.add of every tx
      select            Mempool.select(gas_limit, BLOCK_TXS) for each block
      execute           applying the block's txs (fast path / py-evm)
      state_root        folding state changes into the tries, state root
      tx_receipt_roots  transactions and receipts trie roots
      commit            header, body, receipts, indexes, LMDB commit and fsync
      block_other       the rest of build_block
      pool_update       updating the pool after the block (node.producer.update_pool)

    Blocks are built until the pool is empty. Committed tx/s = TXS / total of all phases
    (wall clock); the process CPU time of the same span is shown too (`cpu_tps` in JSON),
    which a busy machine disturbs much less.
    Afterwards every tx must be committed with receipt status 1, nonces, CMT (including fees)
    and the token balances must add up, else the command fails.
    """
    from rich.console import Console

    try:
        report = run_core(
            txs,
            block_txs,
            runs=runs,
            artifact=artifact,
            data_parent=data_parent,
            progress=not no_progress,
            decode_threads=decode_threads,
        )
    except BenchFailure as exc:
        raise click.ClickException(f"benchmark failed: {exc}") from exc
    console = Console()
    for workload, result in report.results.items():
        console.print(render_table(result, report.all_tps[workload]))
    if as_json:
        click.echo(json.dumps(report.to_json(), separators=(",", ":")))


@bench_group.command("rpc")
@click.option(
    "--txs",
    type=click.IntRange(min=1),
    default=RPC_DEFAULT_TXS,
    show_default=True,
    help="Transactions per workload.",
)
@click.option(
    "--clients",
    type=click.IntRange(min=1),
    default=DEFAULT_CLIENTS,
    show_default=True,
    help="Concurrent asyncio clients (disjoint senders).",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 1000),
    default=DEFAULT_BATCH,
    show_default=True,
    help="eth_sendRawTransaction calls per JSON-RPC batch.",
)
@click.option(
    "--block-time",
    type=click.FloatRange(min=0),
    default=DEFAULT_BLOCK_TIME,
    show_default=True,
    help="The node's interval mining period, seconds. 0 = automine (one block per "
    "transaction): not the throughput mode.",
)
@runs_option
@click.option(
    "--vs-hardhat",
    is_flag=True,
    help="Also run the ERC20 load against a Hardhat 2 node (benchmarks/hardhat; "
    "needs Node.js and npm; `npm ci` on first use).",
)
@json_option
@artifact_option
@no_progress_option
def rpc_command(
    txs: int,
    clients: int,
    batch: int,
    block_time: float,
    runs: int,
    vs_hardhat: bool,
    as_json: bool,
    artifact: Path | None,
    no_progress: bool,
) -> None:
    """Committed tx/s end to end: a real `cmt node` process fed over JSON-RPC.

    For each workload (plain CMT transfers, then ERC20 transfer() calls; the transactions of
    `cmt bench core`), a fresh node on the bench genesis runs with interval mining
    (--block-time; every block packs what the pool holds). TXS transactions are pre-signed
    (not timed); CLIENTS asyncio clients send disjoint shares as JSON-RPC batches of BATCH
    eth_sendRawTransaction; a WebSocket newHeads listener stamps each block. Committed tx/s =
    TXS / (last tx's block announced - first batch sent); latency = block announced - batch
    sent (p50/p95). Every receipt must have status 1, else the command fails.

    Automine (--block-time 0) mines one block per transaction: use it to compare latency, not
    throughput. --vs-hardhat runs the same ERC20 transactions against `hardhat node`
    (automine), one request at a time per sender, and reports the ratio.
    """
    from rich.console import Console

    from cybermiles.bench.rpc import render_table as render_rpc_table
    from cybermiles.bench.rpc import run_rpc

    status = Console(stderr=True)
    try:
        report = run_rpc(
            txs,
            clients,
            batch,
            block_time,
            runs=runs,
            vs_hardhat=vs_hardhat,
            artifact=artifact,
            progress=not no_progress,
            log=None if no_progress else lambda msg: status.print(f"[dim]{msg}[/dim]"),
        )
    except BenchFailure as exc:
        raise click.ClickException(f"benchmark failed: {exc}") from exc
    Console().print(render_rpc_table(report))
    if as_json:
        click.echo(json.dumps(report.to_json(), separators=(",", ":")))


@bench_group.command("network")
@click.option(
    "--validators",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Validator nodes of the temporary testnet.",
)
@click.option(
    "--txs",
    type=click.IntRange(min=1),
    default=None,
    help="Plain transfers to send (default: 25 s of load at --rate, at least 5,000).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=1100.0,  # bench.network.DEFAULT_RATE: 10% above the 1,000 tx/s target
    show_default=True,
    help="Offered load, tx/s over all nodes (0: send everything as fast as possible).",
)
@click.option(
    "--clients",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Sending clients per node (each owns disjoint senders, one batch in flight).",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="Most eth_sendRawTransaction calls per JSON-RPC batch.",
)
@click.option(
    "--block-txs",
    type=click.IntRange(min=1),
    default=2_000,
    show_default=True,
    help="The nodes' mining.max_block_txs.",
)
@click.option(
    "--timeout",
    "timeout_overrides",
    multiple=True,
    metavar="NAME=MS",
    help="Override a consensus timeout of the bench testnet, e.g. --timeout commit_ms=500.",
)
@runs_option
@click.option("--keep", is_flag=True, help="Keep the testnet directory (node logs) afterwards.")
@json_option
@no_progress_option
def network_command(
    validators: int,
    txs: int | None,
    rate: float,
    clients: int,
    batch: int,
    block_txs: int,
    timeout_overrides: tuple[str, ...],
    runs: int,
    keep: bool,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Committed tx/s and finality latency of a local BFT testnet under load.

    Creates a temporary testnet (as `cmt testnet init`; VALIDATORS nodes on loopback, the
    1,000 bench accounts funded in genesis), starts the nodes, pre-signs TXS plain transfers
    (not timed) and sends them paced at RATE tx/s as JSON-RPC batches, each sender always to
    the same node. A newHeads listener on node0 stamps every block; finality = block
    announced - batch sent. Reports the committed tx/s over the steady window (first to last
    bench block), finality p50/p95, blocks, txs per block, heights that needed round > 0,
    each node's CPU share and the load average. Every tx must commit with status 1 and all
    nodes must agree on the last block, else the command fails. All processes and the
    temporary directory are removed at the end, also on Ctrl-C (--keep keeps the directory).
    """
    import signal

    from rich.console import Console

    from cybermiles.bench.network import BENCH_TIMEOUTS, run_network
    from cybermiles.bench.network import render_table as render_network_table

    timeouts = dict(BENCH_TIMEOUTS)
    for item in timeout_overrides:
        name, _, value = item.partition("=")
        if name not in timeouts or not value.isdigit():
            raise click.BadParameter(
                f"{item!r}: expected NAME=MS with NAME one of {', '.join(timeouts)}",
                param_hint="--timeout",
            )
        timeouts[name] = int(value)
    if txs is None:
        txs = max(5_000, int(rate * 25)) if rate > 0 else 25_000

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the cleanup

    previous = signal.signal(signal.SIGTERM, on_term)
    status = Console(stderr=True)
    try:
        report = run_network(
            validators,
            txs,
            rate,
            clients=clients,
            batch=batch,
            block_txs=block_txs,
            timeouts=timeouts,
            runs=runs,
            keep=keep,
            progress=not no_progress,
            log=None if no_progress else lambda msg: status.print(f"[dim]{msg}[/dim]"),
        )
    except BenchFailure as exc:
        raise click.ClickException(f"benchmark failed: {exc}") from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    Console().print(render_network_table(report))
    if as_json:
        click.echo(json.dumps(report.to_json(), separators=(",", ":")))
