"""Module state kept in the storage of the module's own account.

A module sees the state through a ``Backend`` (py-evm's state inside a call, the world state
at the end of a block, a read-only history view for queries), so the state root, proofs,
history and snapshot/revert cover module state like any contract's.

``ModuleStore`` is a key-value store over 32-byte slots. Key ``k`` has its head slot at
``keccak256(k)``, holding ``len(value) + 1`` (0: absent); the value's bytes fill the slots from
``keccak256(head slot)`` on, 32 bytes each, the last one right-padded with zeros. Overwriting
with a shorter value or deleting zeroes the slots no longer used, so a key's footprint is
always exactly its current value's.
"""

from __future__ import annotations

from typing import Protocol

from cybermiles.crypto.keccak import keccak256

SLOT_BYTES = 32


class Backend(Protocol):
    """What a module reads and writes; py-evm's ``StateAPI`` has this shape."""

    def get_storage(self, address: bytes, slot: int) -> int: ...

    def set_storage(self, address: bytes, slot: int, value: int) -> None: ...

    def get_balance(self, address: bytes) -> int: ...

    def set_balance(self, address: bytes, balance: int) -> None: ...


class ReadOnlyState(Exception):
    """A write reached a backend that only reads (queries at a height)."""


class ReadOnlyBackend:
    """A ``Backend`` over anything with ``get_storage`` and ``get_balance`` (``StateView``)."""

    def __init__(self, reader: object) -> None:
        self._reader = reader

    def get_storage(self, address: bytes, slot: int) -> int:
        return self._reader.get_storage(address, slot)  # type: ignore[attr-defined]

    def get_balance(self, address: bytes) -> int:
        return self._reader.get_balance(address)  # type: ignore[attr-defined]

    def set_storage(self, address: bytes, slot: int, value: int) -> None:
        raise ReadOnlyState("module state is read-only here")

    def set_balance(self, address: bytes, balance: int) -> None:
        raise ReadOnlyState("balances are read-only here")


def _head_slot(key: bytes) -> int:
    return int.from_bytes(keccak256(key), "big")


def _data_slot(head: int) -> int:
    return int.from_bytes(keccak256(head.to_bytes(SLOT_BYTES, "big")), "big")


def _chunks(length: int) -> int:
    return (length + SLOT_BYTES - 1) // SLOT_BYTES


class ModuleStore:
    """Byte values under byte keys in the storage of ``address``."""

    def __init__(self, backend: Backend, address: bytes) -> None:
        self.backend = backend
        self.address = address

    def get(self, key: bytes) -> bytes | None:
        head = _head_slot(key)
        marker = self.backend.get_storage(self.address, head)
        if marker == 0:
            return None
        length = marker - 1
        base = _data_slot(head)
        data = b"".join(
            self.backend.get_storage(self.address, base + i).to_bytes(SLOT_BYTES, "big")
            for i in range(_chunks(length))
        )
        return data[:length]

    def put(self, key: bytes, value: bytes) -> None:
        head = _head_slot(key)
        old_marker = self.backend.get_storage(self.address, head)
        old_chunks = _chunks(old_marker - 1) if old_marker else 0
        base = _data_slot(head)
        padded = value + b"\x00" * (-len(value) % SLOT_BYTES)
        new_chunks = len(padded) // SLOT_BYTES
        for i in range(new_chunks):
            chunk = int.from_bytes(padded[i * SLOT_BYTES : (i + 1) * SLOT_BYTES], "big")
            self.backend.set_storage(self.address, base + i, chunk)
        for i in range(new_chunks, old_chunks):
            self.backend.set_storage(self.address, base + i, 0)
        self.backend.set_storage(self.address, head, len(value) + 1)

    def delete(self, key: bytes) -> None:
        head = _head_slot(key)
        marker = self.backend.get_storage(self.address, head)
        if marker == 0:
            return
        base = _data_slot(head)
        for i in range(_chunks(marker - 1)):
            self.backend.set_storage(self.address, base + i, 0)
        self.backend.set_storage(self.address, head, 0)

    # -- integers, the commonest values (counters, totals)
    def get_int(self, key: bytes) -> int:
        value = self.get(key)
        return 0 if value is None else int.from_bytes(value, "big")

    def put_int(self, key: bytes, value: int) -> None:
        if value < 0:
            raise ValueError(f"module integers are unsigned, got {value}")
        if value == 0:
            self.delete(key)
        else:
            self.put(key, value.to_bytes((value.bit_length() + 7) // 8, "big"))

    # -- balances of any account (modules hold and move CMT)
    def balance(self, address: bytes) -> int:
        return self.backend.get_balance(address)

    def transfer(self, sender: bytes, recipient: bytes, amount: int) -> None:
        """Move ``amount`` wei; raises ``ValueError`` if ``sender`` holds less."""
        if amount < 0:
            raise ValueError(f"negative transfer {amount}")
        if amount == 0 or sender == recipient:
            return
        have = self.backend.get_balance(sender)
        if have < amount:
            raise ValueError(f"balance of 0x{sender.hex()} is {have}, below {amount}")
        self.backend.set_balance(sender, have - amount)
        self.backend.set_balance(recipient, self.backend.get_balance(recipient) + amount)

    def mint(self, recipient: bytes, amount: int) -> None:
        """Create ``amount`` wei in ``recipient``'s balance (block rewards only)."""
        if amount:
            self.backend.set_balance(recipient, self.backend.get_balance(recipient) + amount)


class MemoryBackend:
    """A ``Backend`` in plain dicts: for unit tests and tools, never for consensus state."""

    def __init__(self) -> None:
        self.storage: dict[tuple[bytes, int], int] = {}
        self.balances: dict[bytes, int] = {}

    def get_storage(self, address: bytes, slot: int) -> int:
        return self.storage.get((address, slot), 0)

    def set_storage(self, address: bytes, slot: int, value: int) -> None:
        if value:
            self.storage[(address, slot)] = value
        else:
            self.storage.pop((address, slot), None)

    def get_balance(self, address: bytes) -> int:
        return self.balances.get(address, 0)

    def set_balance(self, address: bytes, balance: int) -> None:
        self.balances[address] = balance
