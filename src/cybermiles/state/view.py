"""Read-only views of committed state: at the head, or at an earlier height from reverse diffs.

History rule: the ``history`` table holds, for every account or slot a block ``n`` changed, the
value it had *before* block ``n``. The value at height ``h`` is therefore the first history entry
with ``n > h`` for that key, or the latest value when there is none. Entries older than the kept
window are pruned (``meta/pruned_below``); reading there raises ``StateUnavailable``.
"""

from __future__ import annotations

import lmdb

from cybermiles.chain.database import Database, be64
from cybermiles.crypto.keccak import EMPTY_KECCAK
from cybermiles.state.account import EMPTY_ACCOUNT, Account, decode_account
from cybermiles.state.world import HIST_ACCOUNT, HIST_STORAGE, slot_key


class StateUnavailable(LookupError):
    """The requested height is outside the window of kept state history."""


class StateView:
    """Consistent reads of the state after block ``height`` inside one LMDB read transaction."""

    def __init__(self, db: Database, txn: lmdb.Transaction, height: int, head: int) -> None:
        if height > head:
            raise StateUnavailable(f"block {height} is beyond the head {head}")
        pruned = txn.get(b"pruned_below", db=db[b"meta"])
        if height < head and pruned is not None and height < int.from_bytes(pruned, "big"):
            raise StateUnavailable(
                f"state of block {height} is no longer kept (history starts at "
                f"{int.from_bytes(pruned, 'big')}; run the node with --archive to keep it all)"
            )
        self.db = db
        self.txn = txn
        self.height = height
        self.latest = height == head

    def _historical(self, key: bytes) -> bytes | None:
        """The pre-image recorded by the first block after ``height`` that changed ``key``."""
        cursor = self.txn.cursor(db=self.db[b"history"])
        if cursor.set_range(key + be64(self.height + 1)):
            found = cursor.key()
            if found[:-8] == key:
                return cursor.value()
        return None

    def get_account(self, address: bytes) -> Account | None:
        if not self.latest:
            old = self._historical(HIST_ACCOUNT + address)
            if old is not None:
                return decode_account(old) if old else None
        raw = self.txn.get(address, db=self.db[b"accounts"])
        return decode_account(raw) if raw is not None else None

    def get_account_or_empty(self, address: bytes) -> Account:
        account = self.get_account(address)
        return EMPTY_ACCOUNT if account is None else account

    def get_balance(self, address: bytes) -> int:
        return self.get_account_or_empty(address).balance

    def get_nonce(self, address: bytes) -> int:
        return self.get_account_or_empty(address).nonce

    def get_storage(self, address: bytes, slot: int) -> int:
        key = slot_key(address, slot)
        if not self.latest:
            old = self._historical(HIST_STORAGE + key)
            if old is not None:
                return int.from_bytes(old, "big")
        raw = self.txn.get(key, db=self.db[b"storage"])
        return int.from_bytes(raw, "big") if raw else 0

    def get_code(self, address: bytes) -> bytes:
        code_hash = self.get_account_or_empty(address).code_hash
        if code_hash == EMPTY_KECCAK:
            return b""
        return self.txn.get(code_hash, db=self.db[b"code"]) or b""
