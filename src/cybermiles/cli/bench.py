"""`cmt bench ...`: in-process performance benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cybermiles.bench.core import (
    DEFAULT_BLOCK_TXS,
    DEFAULT_TXS,
    BenchFailure,
    render_table,
    run_core,
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
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Timed runs per workload (same pre-signed txs, fresh chain each); the run "
    "with the median tx/s is reported.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Also print the results as one JSON object on the last line of stdout.",
)
@click.option(
    "--artifact",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="TestToken build artifact (default: contracts/build/"
    "TestToken.json of the source checkout).",
)
@click.option(
    "--data-dir",
    "data_parent",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Where to create the temporary chains (default: the system temp dir); "
    "the disk matters, each block ends with an fsync.",
)
@click.option("--no-progress", is_flag=True, help="No progress bars (they go to stderr).")
def core_command(
    txs: int,
    block_txs: int,
    runs: int,
    as_json: bool,
    artifact: Path | None,
    data_parent: Path | None,
    no_progress: bool,
) -> None:
    """Committed transactions per second of the node core, in process (no RPC, no network).

    Two workloads on a genesis of 1,000 funded accounts: `plain` CMT transfers (gas 21000)
    and `erc20` ERC20 transfer() calls on a TestToken deployed in genesis (gas 60000), both priced
    at min_gas_price. For each, TXS transactions are pre-signed (not timed); then, on a fresh
    chain in a temporary data directory, the clock runs over:

    \b
      decode_recover    decode_transaction of every tx (RLP, signature, sender recovery)
      admission         Mempool.add of every tx
      select            Mempool.select(gas_limit, BLOCK_TXS) for each block
      execute           applying the block's txs (fast path / py-evm)
      state_root        folding state changes into the tries, state root
      tx_receipt_roots  transactions and receipts trie roots
      commit            header, body, receipts, indexes, LMDB commit and fsync
      block_other       the rest of build_block
      pool_update       Mempool.remove_included + on_new_head

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
        )
    except BenchFailure as exc:
        raise click.ClickException(f"benchmark failed: {exc}") from exc
    console = Console()
    for workload, result in report.results.items():
        console.print(render_table(result, report.all_tps[workload]))
    if as_json:
        click.echo(json.dumps(report.to_json(), separators=(",", ":")))
