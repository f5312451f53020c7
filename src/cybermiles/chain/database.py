"""The node's LMDB environment and its named tables.

One environment holds everything (blocks, receipts, indexes, flat state, history), so a block
commits in a single LMDB write transaction: after a crash either the whole block is there or
none of it is. LMDB is copy-on-write with one writer, like reth's MDBX.
"""

from __future__ import annotations

import os
from pathlib import Path

import lmdb

TABLES = (
    b"meta",  # b"head" -> be64(number); b"genesis" -> genesis hash
    b"headers",  # be64(number) -> header RLP
    b"hashes",  # block hash -> be64(number)
    b"bodies",  # be64(number) -> RLP list of [raw tx, sender]
    b"receipts",  # be64(number) -> RLP list of consensus-encoded receipts
    b"txindex",  # tx hash -> be64(number) + be32(index)
    b"accounts",  # address -> account RLP (latest state)
    b"storage",  # address + be256(slot) -> minimal big-endian value (latest state)
    b"code",  # code hash -> code
    b"history",  # reverse diffs: kind + key + be64(number) -> value before block `number`
    b"histidx",  # be64(number) -> concatenated history keys written by that block (pruning)
    b"freetx",  # be64(window) + address -> be32(free transactions used in that window)
    # BFT consensus (node.consensus_app), written in the block's own write transaction:
    b"consensus",  # be64(number) -> RLP [last_commit, [evidence...], beacon_reveal] of the block
    b"seencommit",  # be64(number) -> this node's own commit of the block (for sync)
    b"valsets",  # be64(height) -> encoded ValidatorSet (with priorities) voting on that height
    b"evidence",  # evidence hash -> be64(number of the block that included it)
)

DEFAULT_MAP_SIZE = 1 << 40  # 1 TiB of address space; the file grows only as data is written


def be64(n: int) -> bytes:
    return n.to_bytes(8, "big")


class Database:
    """An LMDB environment with the node's tables opened by name."""

    def __init__(self, path: str | os.PathLike[str], *, map_size: int = DEFAULT_MAP_SIZE) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(
            str(path),
            map_size=map_size,
            max_dbs=len(TABLES) + 4,
            sync=True,
            metasync=True,
            writemap=False,
            readahead=False,
            max_readers=256,
        )
        self.tables = {name: self.env.open_db(name) for name in TABLES}

    def __getitem__(self, name: bytes) -> lmdb._Database:
        return self.tables[name]

    def begin(self, *, write: bool = False) -> lmdb.Transaction:
        return self.env.begin(write=write, buffers=False)

    def close(self) -> None:
        self.env.close()
