"""Throughput of decode_transaction (decode + signature checks + sender recovery).

Pre-signs N EIP-1559 value transfers from distinct keys, then times decoding all of them;
reports the median of R runs, by wall clock and (for shared, noisy machines) per CPU second
of this process. For reference it also times a naive path that re-encodes the
signing payload with ``rlp.decode`` + ``rlp.encode`` before recovering the sender.

    .venv/bin/python benchmarks/tx_decode_bench.py [--count 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import rlp

import cybermiles  # noqa: F401  (selects the pysha3 keccak backend first)
from cybermiles.chain.transactions import decode_transaction
from cybermiles.crypto.keccak import keccak256
from cybermiles.crypto.secp256k1 import recover_address, sign

CHAIN_ID = 18


def make_transfers(count: int) -> list[bytes]:
    """``count`` signed EIP-1559 transfers (fresh key per tx), as raw bytes."""
    txs = []
    for i in range(count):
        key = os.urandom(32)
        unsigned = [CHAIN_ID, i, 10**9, 2 * 10**9, 21_000, os.urandom(20), 10**18 + i, b"", []]
        msg_hash = keccak256(b"\x02" + rlp.encode(unsigned))
        y_parity, r, s = sign(msg_hash, key)
        txs.append(b"\x02" + rlp.encode([*unsigned, y_parity, r, s]))
    return txs


def decode_one(raw: bytes) -> object:
    return decode_transaction(raw, CHAIN_ID)


def naive_decode(raw: bytes) -> bytes:
    """Reference path: full rlp.decode, re-encode the unsigned fields, recover."""
    fields = rlp.decode(raw[1:])
    msg_hash = keccak256(raw[:1] + rlp.encode(fields[:9]))
    y_parity, r, s = (int.from_bytes(x, "big") for x in fields[9:])
    return recover_address(msg_hash, y_parity, r, s)


def measure(
    txs: list[bytes], decode: Callable[[bytes], object], runs: int
) -> tuple[list[float], list[float]]:
    """Per run: transactions per wall-clock second and per CPU second of this process."""
    wall, cpu = [], []
    for _ in range(runs):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        for raw in txs:
            decode(raw)
        wall.append(len(txs) / (time.perf_counter() - wall_start))
        cpu.append(len(txs) / (time.process_time() - cpu_start))
    return wall, cpu


def report(label: str, rates: tuple[list[float], list[float]]) -> None:
    wall, cpu = rates
    runs = ", ".join(f"{rate:,.0f}" for rate in wall)
    print(
        f"{label}: {statistics.median(wall):,.0f} tx/s median wall-clock (runs: {runs}); "
        f"{statistics.median(cpu):,.0f} tx/s per CPU-second"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    txs = make_transfers(args.count)
    print(f"{args.count} signed EIP-1559 transfers, {args.runs} runs each")
    report("decode_transaction ", measure(txs, decode_one, args.runs))
    report("naive re-encode ref", measure(txs, naive_decode, args.runs))


if __name__ == "__main__":
    main()
