"""Per-sender free-transfer usage in the current quota window.

Usage is derived from the chain itself (the free transactions each block included), stored in
the ``freetx`` table under ``be64(window) + sender`` and written in the block's own LMDB
transaction, so every node computes the same counts and a crash cannot split them from blocks.
"""

from __future__ import annotations

import lmdb

from cybermiles.chain.database import Database, be64


class FreeTxCounter:
    """Free transfers used per sender in one window, plus those of the block being built."""

    def __init__(self, db: Database, window: int) -> None:
        self.db = db
        self.window = window
        self._prefix = be64(window)
        self._block: dict[bytes, int] = {}

    def committed(self, sender: bytes) -> int:
        with self.db.begin() as txn:
            raw = txn.get(self._prefix + sender, db=self.db[b"freetx"])
        return int.from_bytes(raw, "big") if raw else 0

    def used(self, sender: bytes) -> int:
        count = self._block.get(sender)
        if count is None:
            count = self._block[sender] = self.committed(sender)
        return count

    def consume(self, sender: bytes) -> None:
        self._block[sender] = self.used(sender) + 1

    def write(self, txn: lmdb.Transaction) -> None:
        """Persist this block's counts; drop the previous window's table entries."""
        table = self.db[b"freetx"]
        for sender in sorted(self._block):
            txn.put(self._prefix + sender, self._block[sender].to_bytes(4, "big"), db=table)
        if self.window > 0:
            old = be64(self.window - 1)
            cursor = txn.cursor(db=table)
            if cursor.set_range(old):
                while cursor.key()[:8] == old and cursor.delete():
                    pass
