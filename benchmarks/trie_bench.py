"""Measure cybermiles.state.trie throughput (plain script, not a test).

Run: ``.venv/bin/python benchmarks/trie_bench.py [--keys N] [--runs R] [--pytrie]``

* inserts: N new 32-byte random keys with ~70-byte values into an empty trie, ``root_hash()``
  every 5,000 changes and at the end (hashing time included);
* updates: N changes to existing keys of an N-key trie (new values), same root cadence;
* from_items: bulk build of N entries, without and with the first ``root_hash()``.

Prints the median of R runs for each figure.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from cybermiles.state.trie import Trie

ROOT_EVERY = 5_000


def _data(n: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    rnd = random.Random(seed)
    keys = [rnd.randbytes(32) for _ in range(n)]
    values = [rnd.randbytes(rnd.randint(60, 80)) for _ in range(n)]
    return keys, values


def bench_inserts(keys: list[bytes], values: list[bytes]) -> float:
    t0 = time.perf_counter()
    trie = Trie()
    for i, (k, v) in enumerate(zip(keys, values, strict=True), 1):
        trie.set(k, v)
        if i % ROOT_EVERY == 0:
            trie.root_hash()
    trie.root_hash()
    return len(keys) / (time.perf_counter() - t0)


def bench_updates(keys: list[bytes], values: list[bytes]) -> float:
    trie = Trie.from_items(zip(keys, values, strict=True))
    trie.root_hash()
    order = keys[:]
    random.Random(1).shuffle(order)
    new_values = [v[::-1] + b"\x01" for v in values]
    t0 = time.perf_counter()
    for i, (k, v) in enumerate(zip(order, new_values, strict=True), 1):
        trie.set(k, v)
        if i % ROOT_EVERY == 0:
            trie.root_hash()
    trie.root_hash()
    return len(keys) / (time.perf_counter() - t0)


def bench_from_items(keys: list[bytes], values: list[bytes]) -> tuple[float, float]:
    items = list(zip(keys, values, strict=True))
    t0 = time.perf_counter()
    trie = Trie.from_items(items)
    t1 = time.perf_counter()
    trie.root_hash()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0


def bench_pytrie(keys: list[bytes], values: list[bytes]) -> float:
    from trie import HexaryTrie

    t0 = time.perf_counter()
    trie = HexaryTrie({})
    for i, (k, v) in enumerate(zip(keys, values, strict=True), 1):
        trie.set(k, v)
        if i % ROOT_EVERY == 0:
            _ = trie.root_hash
    return len(keys) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pytrie", action="store_true", help="also time py-trie HexaryTrie")
    args = parser.parse_args()

    ins, upd, build, build_root, ref = [], [], [], [], []
    for run in range(args.runs):
        keys, values = _data(args.keys, seed=run)
        ins.append(bench_inserts(keys, values))
        upd.append(bench_updates(keys, values))
        b, br = bench_from_items(keys, values)
        build.append(b)
        build_root.append(br)
        if args.pytrie:
            ref.append(bench_pytrie(keys[:20_000], values[:20_000]))

    med = statistics.median
    print(f"keys={args.keys} runs={args.runs} cpus={os.cpu_count()} root every {ROOT_EVERY}")
    print(f"inserts into empty trie : {med(ins):>10,.0f} updates/s  {sorted(round(x) for x in ins)}")
    print(f"updates of existing keys: {med(upd):>10,.0f} updates/s  {sorted(round(x) for x in upd)}")
    print(f"from_items              : {med(build):>10.3f} s")
    print(f"from_items + root_hash  : {med(build_root):>10.3f} s")
    if ref:
        print(f"py-trie inserts (20k)   : {med(ref):>10,.0f} updates/s")


if __name__ == "__main__":
    main()
