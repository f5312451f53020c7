"""A throw-away world state for calls: a journaled overlay over the state at some height.

``OverlayState`` is a :class:`~cybermiles.state.world.WorldState` whose *committed* layer is a
:class:`~cybermiles.state.view.StateView` (the state after any block in the kept history window)
instead of the latest LMDB tables. Rules:

* Reads: the overlay's own writes first, then the view (accounts, storage slots, code by hash),
  cached per overlay. Code is content-addressed and never deleted, so code by hash is read from
  the ``code`` table of the view's read transaction.
* Writes, journal, ``snapshot()`` / ``revert()`` behave exactly as in ``WorldState``; nothing
  is ever committed: ``commit_block`` and ``state_root`` raise ``TypeError``.
* ``copy()`` returns an independent overlay over the same view with the same writes so far
  (like geth's ``StateDB.Copy``); the copies share the read caches, which is safe because the
  view never changes.
* The view's LMDB read transaction must stay open while the overlay is used, and an overlay
  belongs to one thread.
"""

from __future__ import annotations

import lmdb

from cybermiles.crypto.keccak import EMPTY_KECCAK
from cybermiles.state.account import Account
from cybermiles.state.view import StateView
from cybermiles.state.world import WorldState


class OverlayState(WorldState):
    """Uncommittable writes over the read-only state of ``view``."""

    def __init__(self, view: StateView) -> None:
        super().__init__(view.db, history_blocks=None)
        self.view = view

    @property
    def height(self) -> int:
        """The block whose post-state this overlay starts from."""
        return self.view.height

    # ---------------------------------------------------------------- committed reads

    def _committed_account(self, address: bytes) -> Account | None:
        try:
            return self._accounts_committed[address]
        except KeyError:
            account = self._accounts_committed[address] = self.view.get_account(address)
            return account

    def _committed_storage(self, address: bytes, slot: int) -> int:
        key = (address, slot)
        try:
            return self._storage_committed[key]
        except KeyError:
            value = self._storage_committed[key] = self.view.get_storage(address, slot)
            return value

    def get_code(self, code_hash: bytes) -> bytes:
        if code_hash == EMPTY_KECCAK:
            return b""
        code = self._new_code.get(code_hash) or self._code.get(code_hash)
        if code is None:
            code = self.view.txn.get(code_hash, db=self.view.db[b"code"])
            if code is None:
                raise KeyError(f"missing code 0x{code_hash.hex()}")
            self._code[code_hash] = code
        return code

    # ---------------------------------------------------------------- copies

    def copy(self) -> OverlayState:
        """An independent overlay with the same writes (no journal), sharing the read caches."""
        clone = OverlayState(self.view)
        clone._accounts_committed = self._accounts_committed
        clone._storage_committed = self._storage_committed
        clone._code = self._code
        clone._accounts = dict(self._accounts)
        clone._storage = {address: dict(slots) for address, slots in self._storage.items()}
        clone._wiped = set(self._wiped)
        clone._new_code = dict(self._new_code)
        return clone

    # ---------------------------------------------------------------- never committed

    def state_root(self) -> bytes:
        raise TypeError("an overlay state has no state root: it is never committed")

    def commit_block(self, txn: lmdb.Transaction, number: int) -> bytes:
        raise TypeError("an overlay state is never committed")
