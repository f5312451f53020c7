"""The world state of the chain head plus the writes of the block being built.

Layers, read top-down::

    journal-backed overlay   writes of the open block (accounts, storage, wipes, code)
    committed caches         decoded values read from LMDB since the last commit
    LMDB tables              ``accounts`` / ``storage`` / ``code`` (latest committed state)

Every overlay write appends an undo record to a journal, so ``snapshot()`` / ``revert()`` are
O(changes). ``commit_block`` folds the overlay into the in-memory Merkle-Patricia tries (each
dirty node hashed once), writes the flat values plus reverse diffs for historical queries into
the caller's LMDB write transaction, and returns the new state root. Iteration is always over
sorted keys so the result never depends on insertion order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import lmdb
import rlp

from cybermiles.chain.database import Database, be64
from cybermiles.crypto.keccak import EMPTY_KECCAK, keccak256
from cybermiles.state.account import (
    EMPTY_ACCOUNT,
    Account,
    decode_account,
    encode_account,
    encode_storage_value,
)
from cybermiles.state.trie import BLANK_ROOT, Trie

_ABSENT = object()  # journal marker: the key was not in the overlay before the write
CACHE_LIMIT = 500_000

HIST_ACCOUNT = b"a"
HIST_STORAGE = b"s"


@dataclass(slots=True)
class PreparedState:
    """A block folded into the tries (``root``) whose LMDB writes are still pending.

    ``ops`` are ``(table, key, value)`` writes (``None``: delete); ``accounts`` / ``storage``
    the committed values afterwards (cache updates); ``wiped_slots`` cached slots to forget;
    ``journal`` the trie updates (old and new values) for discarding, None if not kept.
    """

    number: int
    root: bytes
    ops: list[tuple[object, bytes, bytes | None]]
    code: dict[bytes, bytes]
    accounts: dict[bytes, Account | None]
    storage: dict[tuple[bytes, int], int]
    wiped_slots: list[tuple[bytes, int]]
    journal: list[tuple] | None
    applied: bool = True  # the trie updates are in the tries


def slot_key(address: bytes, slot: int) -> bytes:
    """Flat-store key of a storage slot: address followed by the 32-byte big-endian slot."""
    return address + slot.to_bytes(32, "big")


def int_to_min_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


class WorldState:
    """Mutable state of the head; only the block producer (one thread) may write to it."""

    def __init__(self, db: Database, *, history_blocks: int | None = 128) -> None:
        self.db = db
        self.history_blocks = history_blocks  # None keeps every block's history (archive)
        self._accounts_committed: dict[bytes, Account | None] = {}
        self._storage_committed: dict[tuple[bytes, int], int] = {}
        self._code: dict[bytes, bytes] = {}
        self._account_trie: Trie | None = None
        self._storage_tries: dict[bytes, Trie] = {}
        self._prepared: PreparedState | None = None
        self._reset_overlay()

    def _reset_overlay(self) -> None:
        self._accounts: dict[bytes, Account | None] = {}
        self._storage: dict[bytes, dict[int, int]] = {}
        self._wiped: set[bytes] = set()
        self._new_code: dict[bytes, bytes] = {}
        self.journal: list[tuple] = []

    # ---------------------------------------------------------------- committed reads

    def _committed_account(self, address: bytes) -> Account | None:
        try:
            return self._accounts_committed[address]
        except KeyError:
            pass
        with self.db.begin() as txn:
            raw = txn.get(address, db=self.db[b"accounts"])
        account = decode_account(raw) if raw is not None else None
        if len(self._accounts_committed) > CACHE_LIMIT:
            self._accounts_committed.clear()
        self._accounts_committed[address] = account
        return account

    def _committed_storage(self, address: bytes, slot: int) -> int:
        key = (address, slot)
        try:
            return self._storage_committed[key]
        except KeyError:
            pass
        with self.db.begin() as txn:
            raw = txn.get(slot_key(address, slot), db=self.db[b"storage"])
        value = int.from_bytes(raw, "big") if raw else 0
        if len(self._storage_committed) > CACHE_LIMIT:
            self._storage_committed.clear()
        self._storage_committed[key] = value
        return value

    # ---------------------------------------------------------------- reads

    def get_account(self, address: bytes) -> Account | None:
        """The account, or None if it does not exist."""
        try:
            return self._accounts[address]
        except KeyError:
            return self._committed_account(address)

    def get_account_or_empty(self, address: bytes) -> Account:
        account = self.get_account(address)
        return EMPTY_ACCOUNT if account is None else account

    def get_storage(self, address: bytes, slot: int) -> int:
        overlay = self._storage.get(address)
        if overlay is not None and slot in overlay:
            return overlay[slot]
        if address in self._wiped:
            return 0
        return self._committed_storage(address, slot)

    def get_code(self, code_hash: bytes) -> bytes:
        if code_hash == EMPTY_KECCAK:
            return b""
        code = self._new_code.get(code_hash) or self._code.get(code_hash)
        if code is None:
            with self.db.begin() as txn:
                code = txn.get(code_hash, db=self.db[b"code"])
            if code is None:
                raise KeyError(f"missing code 0x{code_hash.hex()}")
            self._code[code_hash] = code
        return code

    # ---------------------------------------------------------------- journaled writes

    def set_account(self, address: bytes, account: Account | None) -> None:
        """Create, replace or (with None) delete an account; deletion also wipes storage."""
        self.journal.append((0, address, self._accounts.get(address, _ABSENT)))
        self._accounts[address] = account
        if account is None:
            self.wipe_storage(address)

    def set_storage(self, address: bytes, slot: int, value: int) -> None:
        overlay = self._storage.get(address)
        if overlay is None:
            overlay = self._storage[address] = {}
            self.journal.append((3, address, None))
        self.journal.append((1, address, slot, overlay.get(slot, _ABSENT)))
        overlay[slot] = value

    def wipe_storage(self, address: bytes) -> None:
        """Clear all of an account's storage (self-destruct, account deletion)."""
        self.journal.append(
            (2, address, self._storage.get(address, _ABSENT), address in self._wiped)
        )
        self._storage[address] = {}
        self._wiped.add(address)

    def put_code(self, code: bytes) -> bytes:
        """Store code by hash (content-addressed, so never journaled) and return the hash."""
        code_hash = keccak256(code)
        if code:
            self._new_code[code_hash] = code
        return code_hash

    def snapshot(self) -> int:
        return len(self.journal)

    def revert(self, snapshot: int) -> None:
        """Undo every write made after ``snapshot``, newest first."""
        journal = self.journal
        while len(journal) > snapshot:
            entry = journal.pop()
            kind = entry[0]
            if kind == 0:
                _, address, old = entry
                if old is _ABSENT:
                    del self._accounts[address]
                else:
                    self._accounts[address] = old
            elif kind == 1:
                _, address, slot, old = entry
                if old is _ABSENT:
                    del self._storage[address][slot]
                else:
                    self._storage[address][slot] = old
            elif kind == 2:
                _, address, old, was_wiped = entry
                if old is _ABSENT:
                    del self._storage[address]
                else:
                    self._storage[address] = old
                if not was_wiped:
                    self._wiped.discard(address)
            elif kind == 3:
                del self._storage[entry[1]]
            else:  # kind 4: an undo callback registered by a user of the journal
                entry[1]()

    def clear_journal(self) -> None:
        """Forget undo records (after a transaction ends; its writes stay in the overlay)."""
        self.journal.clear()

    def discard_block(self) -> None:
        """Drop every uncommitted write of the open block (not a prepared block: see
        :meth:`discard_prepared`)."""
        self._reset_overlay()

    # ---------------------------------------------------------------- tries

    def _load_account_trie(self) -> Trie:
        if self._account_trie is None:
            with self.db.begin() as txn:
                cursor = txn.cursor(db=self.db[b"accounts"])
                items = [(keccak256(address), raw) for address, raw in cursor]
            self._account_trie = Trie.from_items(items)
        return self._account_trie

    def _load_storage_trie(self, address: bytes) -> Trie:
        trie = self._storage_tries.get(address)
        if trie is None:
            trie = Trie.from_items(
                (keccak256(key[20:]), encode_storage_value(int.from_bytes(raw, "big")))
                for key, raw in self._committed_slots(address)
            )
            self._storage_tries[address] = trie
        return trie

    def _committed_slots(self, address: bytes) -> list[tuple[bytes, bytes]]:
        with self.db.begin() as txn:
            cursor = txn.cursor(db=self.db[b"storage"])
            if not cursor.set_range(address):
                return []
            out = []
            for key, raw in cursor:
                if key[:20] != address:
                    break
                out.append((key, raw))
            return out

    def state_root(self) -> bytes:
        """Root of the committed state plus a prepared block's updates, if one is in the tries
        (the open block's writes are not included)."""
        return self._load_account_trie().root_hash()

    def prove_account(self, address: bytes) -> tuple[Account | None, list[bytes]]:
        """The committed account (None if absent) and its Merkle proof against
        :meth:`state_root` (EIP-1186: RLP nodes from the root toward ``keccak(address)``).

        Reads the committed account trie only, never the open block's writes (a prepared block
        is suspended first, see :meth:`suspend_prepared`); the caller makes
        sure no block is being committed meanwhile (``Blockchain.prove`` holds the write lock).
        """
        self.suspend_prepared()
        trie = self._load_account_trie()
        hashed = keccak256(address)
        raw = trie.get(hashed)
        return (None if raw is None else decode_account(raw)), trie.prove(hashed)

    def prove_storage(self, address: bytes, slot: int) -> tuple[int, list[bytes]]:
        """The committed value of ``slot`` and its proof against the account's storage root.

        An absent account or one with an empty storage root answers ``(0, [])`` without
        loading a storage trie (geth's shape); otherwise the storage trie is loaded into the
        cache, as a commit touching the account would. Same locking rule as
        :meth:`prove_account`.
        """
        self.suspend_prepared()
        raw = self._load_account_trie().get(keccak256(address))
        if raw is None or decode_account(raw).storage_root == BLANK_ROOT:
            return 0, []
        trie = self._load_storage_trie(address)
        hashed = keccak256(slot.to_bytes(32, "big"))
        encoded = trie.get(hashed)
        value = 0 if encoded is None else int.from_bytes(rlp.decode(encoded), "big")
        return value, trie.prove(hashed)

    # ---------------------------------------------------------------- commit

    def commit_block(self, txn: lmdb.Transaction, number: int) -> bytes:
        """Fold the open block's writes into the tries and ``txn``; return the state root.

        The same as :meth:`prepare_block` (without an undo journal) then :meth:`write_block`.
        The caller commits ``txn`` (with the block itself). If anything fails before that, the
        node must drop this object and reopen the state.
        """
        prepared = self.prepare_block(number, undo=False)
        self.write_block(txn, prepared)
        return prepared.root

    def prepare_block(self, number: int, *, undo: bool = True) -> PreparedState:
        """Fold the open block's writes into the in-memory tries and return the state root
        with every LMDB write the block needs, without writing anything.

        The overlay is emptied (reads see the committed state again). Until
        :meth:`write_block` or :meth:`discard_prepared`, the tries hold the block: no other
        block may be prepared. With ``undo`` the trie updates are journaled so that
        :meth:`discard_prepared` (or :meth:`suspend_prepared`) restores the tries exactly; the
        dev producer, which always commits, skips the journal.
        """
        if self._prepared is not None:
            raise RuntimeError(
                f"block {self._prepared.number} is prepared and neither written nor discarded"
            )
        db = self.db
        ops: list[tuple[object, bytes, bytes | None]] = []  # (table, key, value; None: delete)
        history: list[bytes] = []
        hist_db, storage_db, accounts_db = db[b"history"], db[b"storage"], db[b"accounts"]
        suffix = be64(number)
        account_trie = self._load_account_trie()
        journal: list[tuple] | None = [] if undo else None
        storage_cache: dict[tuple[bytes, int], int] = {}
        wiped_slots: list[tuple[bytes, int]] = []
        tries = self._storage_tries

        wiped_old: dict[bytes, bytes] = {}
        for address in sorted(self._wiped):
            for key, raw in self._committed_slots(address):
                wiped_old[key] = raw
                hkey = HIST_STORAGE + key + suffix
                ops.append((hist_db, hkey, raw))
                history.append(hkey)
                ops.append((storage_db, key, None))
                wiped_slots.append((address, int.from_bytes(key[20:], "big")))
            fresh = Trie()
            if journal is not None:
                journal.append(("T", address, tries.get(address, _ABSENT), fresh))
            tries[address] = fresh

        new_roots: dict[bytes, bytes] = {}
        for address in sorted(self._storage):
            slots = self._storage[address]
            if not slots and address not in self._wiped:
                continue
            trie = self._load_storage_trie(address)
            wiped = address in self._wiped
            for slot in sorted(slots):
                value = slots[slot]
                key = slot_key(address, slot)
                if wiped:
                    if key not in wiped_old:  # history of wiped slots was written above
                        hkey = HIST_STORAGE + key + suffix
                        ops.append((hist_db, hkey, b""))
                        history.append(hkey)
                else:
                    old = self._committed_storage(address, slot)
                    if value == old:
                        continue
                    hkey = HIST_STORAGE + key + suffix
                    ops.append((hist_db, hkey, int_to_min_bytes(old)))
                    history.append(hkey)
                hashed = keccak256(slot.to_bytes(32, "big"))
                encoded = encode_storage_value(value) if value else None
                if journal is not None:
                    journal.append(("s", trie, hashed, trie.get(hashed), encoded))
                if encoded is not None:
                    trie.set(hashed, encoded)
                    ops.append((storage_db, key, int_to_min_bytes(value)))
                else:
                    trie.delete(hashed)
                    ops.append((storage_db, key, None))
                storage_cache[(address, slot)] = value
            new_roots[address] = trie.root_hash()

        # An account's storage root is never taken from the overlay (writers need not keep it
        # current): it is the new root if its storage changed, empty if wiped, else unchanged.
        accounts = dict(self._accounts)
        for address in new_roots:
            accounts.setdefault(address, self._committed_account(address))
        for address, account in accounts.items():
            if account is None:
                continue
            if address in new_roots:
                root = new_roots[address]
            elif address in self._wiped:
                root = BLANK_ROOT
            else:
                committed = self._committed_account(address)
                root = BLANK_ROOT if committed is None else committed.storage_root
            if account.storage_root != root:
                accounts[address] = Account(account.nonce, account.balance, root, account.code_hash)

        account_cache: dict[bytes, Account | None] = {}
        for address in sorted(accounts):
            account = accounts[address]
            old = self._committed_account(address)
            if account == old:
                continue
            hkey = HIST_ACCOUNT + address + suffix
            ops.append((hist_db, hkey, b"" if old is None else encode_account(old)))
            history.append(hkey)
            hashed = keccak256(address)
            encoded = None if account is None else encode_account(account)
            if journal is not None:
                journal.append(("s", account_trie, hashed, account_trie.get(hashed), encoded))
            if encoded is None:
                account_trie.delete(hashed)
                ops.append((accounts_db, address, None))
                if journal is not None:
                    journal.append(("T", address, tries.get(address, _ABSENT), _ABSENT))
                tries.pop(address, None)
            else:
                account_trie.set(hashed, encoded)
                ops.append((accounts_db, address, encoded))
            account_cache[address] = account

        code = self._new_code
        ops.append((db[b"histidx"], suffix, b"".join(history)))
        prepared = PreparedState(
            number=number,
            root=account_trie.root_hash(),
            ops=ops,
            code=code,
            accounts=account_cache,
            storage=storage_cache,
            wiped_slots=wiped_slots,
            journal=journal,
        )
        self._reset_overlay()
        self._prepared = prepared
        return prepared

    @property
    def prepared(self) -> PreparedState | None:
        """The block folded into the tries but not yet written or discarded."""
        return self._prepared

    def write_block(self, txn: lmdb.Transaction, prepared: PreparedState) -> None:
        """Write ``prepared`` (from :meth:`prepare_block`) into ``txn`` and make it the
        committed state of this object (caches). The caller commits ``txn``; if that fails the
        node must drop this object and reopen the state."""
        if prepared is not self._prepared:
            raise RuntimeError(f"block {prepared.number} is not the prepared block")
        if not prepared.applied:  # suspended (proofs ran meanwhile): redo the trie updates
            self._replay(prepared.journal or [])
            prepared.applied = True
        put, delete = txn.put, txn.delete
        for table, key, value in prepared.ops:
            if value is None:
                delete(key, db=table)
            else:
                put(key, value, db=table)
        code_db = self.db[b"code"]
        for code_hash in sorted(prepared.code):
            txn.put(code_hash, prepared.code[code_hash], db=code_db)
        self._prune_history(txn, prepared.number)
        storage_committed = self._storage_committed
        for key in prepared.wiped_slots:
            storage_committed.pop(key, None)
        storage_committed.update(prepared.storage)
        self._accounts_committed.update(prepared.accounts)
        self._code.update(prepared.code)
        prepared.journal = None
        self._prepared = None

    def discard_prepared(self, prepared: PreparedState) -> None:
        """Forget ``prepared``: the tries are exactly as before :meth:`prepare_block`.

        Raises
        ------
        RuntimeError
            If ``prepared`` is not the prepared block or was prepared without an undo journal.
        """
        if prepared is not self._prepared:
            raise RuntimeError(f"block {prepared.number} is not the prepared block")
        self.suspend_prepared()
        self._prepared = None

    def suspend_prepared(self) -> None:
        """Take the prepared block's updates out of the tries (for proofs of the committed
        state); :meth:`write_block` puts them back. No-op without a prepared block."""
        prepared = self._prepared
        if prepared is None or not prepared.applied:
            return
        if prepared.journal is None:
            raise RuntimeError(f"block {prepared.number} was prepared without an undo journal")
        tries = self._storage_tries
        for entry in reversed(prepared.journal):
            if entry[0] == "s":
                _, trie, key, old, _new = entry
                if old is None:
                    trie.delete(key)
                else:
                    trie.set(key, old)
            else:
                _, address, old, _new = entry
                if old is _ABSENT:
                    tries.pop(address, None)
                else:
                    tries[address] = old
        prepared.applied = False

    def _replay(self, journal: list[tuple]) -> None:
        tries = self._storage_tries
        for entry in journal:
            if entry[0] == "s":
                _, trie, key, _old, new = entry
                if new is None:
                    trie.delete(key)
                else:
                    trie.set(key, new)
            else:
                _, address, _old, new = entry
                if new is _ABSENT:
                    tries.pop(address, None)
                else:
                    tries[address] = new

    def _prune_history(self, txn: lmdb.Transaction, number: int) -> None:
        if self.history_blocks is None or number <= self.history_blocks:
            return
        old = number - self.history_blocks
        histidx = self.db[b"histidx"]
        blob = txn.get(be64(old), db=histidx)
        if blob is None:
            return
        hist_db = self.db[b"history"]
        for key in split_history_keys(blob):
            txn.delete(key, db=hist_db)
        txn.delete(be64(old), db=histidx)
        txn.put(b"pruned_below", be64(old), db=self.db[b"meta"])  # heights >= old readable

    def load_genesis(
        self, accounts: Iterable[tuple[bytes, Account, dict[int, int], bytes]]
    ) -> None:
        """Write genesis accounts (address, account, storage, code) into the open block."""
        for address, account, storage, code in accounts:
            code_hash = self.put_code(code)
            self.set_account(
                address, Account(account.nonce, account.balance, account.storage_root, code_hash)
            )
            for slot, value in sorted(storage.items()):
                if value:
                    self.set_storage(address, slot, value)
        self.clear_journal()


def split_history_keys(blob: bytes) -> list[bytes]:
    """Split a ``histidx`` value back into the history keys it concatenates."""
    keys = []
    i = 0
    while i < len(blob):
        size = 29 if blob[i : i + 1] == HIST_ACCOUNT else 61
        keys.append(blob[i : i + size])
        i += size
    return keys
