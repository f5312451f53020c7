"""Finding blocks, transactions and state for a request's block reference.

Rules:

* Head tags (latest, pending, safe, finalized) read the head once per call; ``earliest`` is 0.
* :func:`find_block` returns None for a block the node does not have (block getters answer
  null). :func:`state` raises ``HeaderNotFound`` for one (state getters answer -32000), and
  ``StateUnavailable`` escapes for a height outside the kept history window.
* Every stored hash is canonical: the chain has BFT finality and never reorganises, so
  ``requireCanonical`` needs no extra check.
* Stored transactions are decoded with ``decode_transaction`` given the sender stored beside
  them in the block body (no second signature recovery); decoded ones are kept in an LRU cache
  keyed by raw bytes and bounded in memory (``TX_CACHE_BYTES``, counting each entry as its raw
  size plus ``TX_ENTRY_OVERHEAD`` for the decoded object).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cybermiles.chain.header import Header, header_hash
from cybermiles.chain.receipts import Receipt
from cybermiles.chain.store import StoredTx
from cybermiles.chain.transactions import Transaction, decode_transaction
from cybermiles.rpc.errors import HeaderNotFound
from cybermiles.rpc.format import TxContext
from cybermiles.rpc.params import BlockRef
from cybermiles.state.view import StateView

TX_CACHE_BYTES = 32 * 1024 * 1024
TX_ENTRY_OVERHEAD = 1024


@dataclass(frozen=True, slots=True)
class BlockInfo:
    number: int
    header: Header
    hash: bytes

    def tx_context(self, index: int) -> TxContext:
        return TxContext(
            block_hash=self.hash,
            block_number=self.number,
            block_timestamp=self.header.timestamp,
            index=index,
            base_fee=self.header.base_fee_per_gas,
        )


def head_number(node: Any) -> int:
    return int(node.chain.head.block_number)


def block_number(node: Any, ref: BlockRef) -> int | None:
    """The height ``ref`` names, or None for an unknown hash (heights are not checked)."""
    if ref.is_head:
        return head_number(node)
    if ref.hash is not None:
        return node.chain.blocks.number_of(ref.hash)
    return ref.number


def block_at(node: Any, number: int) -> BlockInfo | None:
    header = node.chain.blocks.header(number)
    if header is None:
        return None
    return BlockInfo(number, header, header_hash(header))


def find_block(node: Any, ref: BlockRef) -> BlockInfo | None:
    number = block_number(node, ref)
    return None if number is None else block_at(node, number)


def state_height(node: Any, ref: BlockRef) -> int | None:
    """The height whose state ``ref`` reads (None: the head); HeaderNotFound if unknown."""
    if ref.is_head:
        return None
    if ref.hash is not None:
        number = node.chain.blocks.number_of(ref.hash)
        if number is None:
            raise HeaderNotFound(by_hash=True)
        return int(number)
    assert ref.number is not None
    if ref.number > head_number(node) or node.chain.blocks.header(ref.number) is None:
        raise HeaderNotFound()
    return ref.number


@contextmanager
def state(node: Any, ref: BlockRef) -> Iterator[StateView]:
    """A consistent read-only view of the state ``ref`` names."""
    with node.chain.state_at(state_height(node, ref)) as view:
        yield view


class TxCache:
    """Decoded transactions by raw bytes, least recently used first out, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[bytes, Transaction] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def decode(self, raw: bytes, chain_id: int, sender: bytes | None = None) -> Transaction:
        with self._lock:
            tx = self._items.get(raw)
            if tx is not None and tx.chain_id == chain_id:
                self._items.move_to_end(raw)
                return tx
        tx = decode_transaction(raw, chain_id, known_sender=sender)
        with self._lock:
            if raw not in self._items:
                self._items[raw] = tx
                self._bytes += len(raw) + TX_ENTRY_OVERHEAD
            while self._bytes > self.max_bytes and self._items:
                old, _ = self._items.popitem(last=False)
                self._bytes -= len(old) + TX_ENTRY_OVERHEAD
        return tx


_cache = TxCache(TX_CACHE_BYTES)


def decode(node: Any, stored: StoredTx) -> Transaction:
    """A stored transaction, decoded with its stored sender (cached)."""
    return _cache.decode(stored.raw, node.chain_id, stored.sender)


class BlockDataCache:
    """The last few blocks' decoded bodies or receipts, keyed by block hash (immutable data).

    One receipt or transaction lookup needs its block's whole list (receipts carry cumulative
    gas); without this, polling receipts of a 5,000-transaction block one by one would decode
    the block's list once per poll.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._items: OrderedDict[bytes, list[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, block_hash: bytes, load: Any) -> list[Any]:
        with self._lock:
            found = self._items.get(block_hash)
            if found is not None:
                self._items.move_to_end(block_hash)
                return found
        value = load()
        with self._lock:
            self._items[block_hash] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


_bodies = BlockDataCache()
_receipts = BlockDataCache()


def body(node: Any, block: BlockInfo) -> list[StoredTx]:
    """The stored transactions (raw bytes and sender) of ``block``."""
    return _bodies.get(block.hash, lambda: node.chain.blocks.body(block.number) or [])


def transactions(node: Any, block: BlockInfo) -> list[Transaction]:
    return [decode(node, stored) for stored in body(node, block)]


def receipts(node: Any, block: BlockInfo) -> list[Receipt]:
    return _receipts.get(block.hash, lambda: node.chain.blocks.receipts(block.number) or [])


def find_transaction(node: Any, tx_hash: bytes) -> tuple[BlockInfo, int, Transaction] | None:
    """The mined transaction with ``tx_hash``: its block, index and decoded form."""
    location = node.chain.blocks.tx_location(tx_hash)
    if location is None:
        return None
    block = block_at(node, location.block_number)
    if block is None:
        return None
    stored = body(node, block)
    if location.index >= len(stored):
        return None
    return block, location.index, decode(node, stored[location.index])
