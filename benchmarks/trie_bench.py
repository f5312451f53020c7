"""Measure cybermiles.state.trie throughput (plain script, not a test).

Run: ``.venv/bin/python benchmarks/trie_bench.py [--keys N] [--runs R] [--pytrie]``

* inserts: N new 32-byte random keys with 60-80-byte values into an empty trie,
  ``root_hash()`` every 5,000 changes and at the end (hashing time included);
* updates: N new values for the existing keys of an N-key trie, same root cadence;
* from_items: bulk build of N entries, without and with the first ``root_hash()``.

Prints the median of R runs of each figure, from wall-clock time and from process CPU time
(the CPU figure is the one to trust on a shared, busy machine).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable

from cybermiles.state.trie import Trie

ROOT_EVERY = 5_000
Timing = tuple[float, float]  # (wall seconds, CPU seconds)


def _timed(fn: Callable[[], object]) -> Timing:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _data(n: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    rnd = random.Random(seed)
    keys = [rnd.randbytes(32) for _ in range(n)]
    values = [rnd.randbytes(rnd.randint(60, 80)) for _ in range(n)]
    return keys, values


def _apply(trie: Trie, keys: list[bytes], values: list[bytes]) -> None:
    for i, (k, v) in enumerate(zip(keys, values, strict=True), 1):
        trie.set(k, v)
        if i % ROOT_EVERY == 0:
            trie.root_hash()
    trie.root_hash()


def bench_inserts(keys: list[bytes], values: list[bytes]) -> Timing:
    return _timed(lambda: _apply(Trie(), keys, values))


def bench_updates(keys: list[bytes], values: list[bytes]) -> Timing:
    trie = Trie.from_items(zip(keys, values, strict=True))
    trie.root_hash()
    order = keys[:]
    random.Random(1).shuffle(order)
    new_values = [v[::-1] + b"\x01" for v in values]
    return _timed(lambda: _apply(trie, order, new_values))


def bench_from_items(keys: list[bytes], values: list[bytes]) -> tuple[Timing, Timing]:
    items = list(zip(keys, values, strict=True))
    build = _timed(lambda: Trie.from_items(items))
    full = _timed(lambda: Trie.from_items(items).root_hash())
    return build, full


def bench_pytrie(keys: list[bytes], values: list[bytes]) -> Timing:
    from trie import HexaryTrie

    def run() -> None:
        trie = HexaryTrie({})
        for i, (k, v) in enumerate(zip(keys, values, strict=True), 1):
            trie.set(k, v)
            if i % ROOT_EVERY == 0:
                _ = trie.root_hash

    return _timed(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pytrie", action="store_true", help="also time py-trie (20k keys)")
    args = parser.parse_args()

    rows: dict[str, list[Timing]] = {}
    for run in range(args.runs):
        keys, values = _data(args.keys, seed=run)
        rows.setdefault("inserts", []).append(bench_inserts(keys, values))
        rows.setdefault("updates", []).append(bench_updates(keys, values))
        build, full = bench_from_items(keys, values)
        rows.setdefault("from_items", []).append(build)
        rows.setdefault("from_items+root", []).append(full)
        if args.pytrie:
            rows.setdefault("pytrie", []).append(bench_pytrie(keys[:20_000], values[:20_000]))

    def med(name: str, i: int) -> float:
        return statistics.median(t[i] for t in rows[name])

    print(f"keys={args.keys} runs={args.runs} cpus={os.cpu_count()} root every {ROOT_EVERY}")
    print(f"{'':28}{'wall':>12}{'cpu':>12}")
    for name, label in [
        ("inserts", "inserts into empty trie"),
        ("updates", "updates of existing keys"),
    ]:
        w, c = args.keys / med(name, 0), args.keys / med(name, 1)
        print(f"{label:28}{w:>12,.0f}{c:>12,.0f}  updates/s")
    if "pytrie" in rows:
        w, c = 20_000 / med("pytrie", 0), 20_000 / med("pytrie", 1)
        print(f"{'py-trie inserts (20k keys)':28}{w:>12,.0f}{c:>12,.0f}  updates/s")
    for name in ("from_items", "from_items+root"):
        print(f"{name:28}{med(name, 0):>12.3f}{med(name, 1):>12.3f}  s")


if __name__ == "__main__":
    main()
