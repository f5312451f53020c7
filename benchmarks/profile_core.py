"""Profile one workload of `cmt bench core` with cProfile (plain script, not a test).

Run: ``.venv/bin/python benchmarks/profile_core.py [--workload erc20] [--txs N] [--block-txs B]
[--top 30] [--sort tottime|cumulative] [--out FILE.prof]``

Signing happens before the profiler starts; the profile covers ``run_workload`` (a fresh chain,
decode, admission, blocks and the final checks; the checks are a small share). Note that
cProfile roughly doubles the cost of Python-heavy code such as py-evm, so use it for the
ranking of hot spots and ``cmt bench core`` for the figures.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

import cybermiles  # noqa: F401  (selects the pysha3 keccak backend first)
from cybermiles.bench.core import (
    ACCOUNTS,
    WORKLOADS,
    bench_genesis,
    load_token_code,
    run_workload,
    sign_workload,
)
from cybermiles.bench.txgen import bench_keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=WORKLOADS, default="erc20")
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--block-txs", type=int, default=5_000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    parser.add_argument("--out", default=None, help="also dump the raw stats to this file")
    args = parser.parse_args()

    keys = bench_keys(ACCOUNTS)
    genesis = bench_genesis(keys, load_token_code())
    raws = sign_workload(args.workload, keys, args.txs, genesis.params.min_gas_price)
    profiler = cProfile.Profile()
    profiler.enable()
    result = run_workload(args.workload, raws, genesis, keys, args.block_txs)
    profiler.disable()
    print(f"{args.workload}: {result.tps:,.0f} tx/s under the profiler")
    for name, seconds in result.phases.items():
        print(f"  {name:<18} {seconds * 1e3:>10,.1f} ms")
    if args.out:
        profiler.dump_stats(args.out)
    pstats.Stats(profiler).strip_dirs().sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
