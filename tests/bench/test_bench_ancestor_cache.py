"""Blockchain.ancestor_hashes' cache (a performance change) returns what reading headers does."""

from __future__ import annotations

from cybermiles.bench.core import COINBASE, GENESIS_TIMESTAMP, bench_genesis
from cybermiles.bench.txgen import bench_keys
from cybermiles.chain.header import header_hash
from cybermiles.node.blockchain import ANCESTOR_WINDOW, Blockchain


def _from_headers(chain: Blockchain, limit: int) -> tuple[bytes, ...]:
    """The definition: the head hash, then the hashes of the stored parent headers."""
    hashes = [chain.head_hash]
    number = chain.head.block_number - 1
    while number >= 0 and len(hashes) < limit:
        header = chain.blocks.header(number)
        assert header is not None
        hashes.append(header_hash(header))
        number -= 1
    return tuple(hashes)


def test_cached_ancestors_match_stored_headers(tmp_path) -> None:
    genesis = bench_genesis(bench_keys(2), b"\x00")
    chain = Blockchain(tmp_path / "data", genesis)
    limits = (0, 1, 2, 7, ANCESTOR_WINDOW - 1, ANCESTOR_WINDOW, ANCESTOR_WINDOW + 5)
    try:
        for height in range(1, ANCESTOR_WINDOW + 12):
            chain.build_block([], timestamp=GENESIS_TIMESTAMP + height, coinbase=COINBASE)
            if height % 37 in (0, 1) or height >= ANCESTOR_WINDOW - 2:
                for limit in limits:
                    assert chain.ancestor_hashes(limit) == _from_headers(chain, limit), limit
        assert len(chain.ancestor_hashes()) == ANCESTOR_WINDOW
        head = chain.ancestor_hashes()
    finally:
        chain.close()
    reopened = Blockchain(tmp_path / "data", genesis)
    try:
        assert reopened.ancestor_hashes() == head == _from_headers(reopened, ANCESTOR_WINDOW)
    finally:
        reopened.close()
