"""Log criteria and the polling filters of eth_newFilter & co. (geth's ``eth/filters``).

Criteria (the ``filter`` object of eth_getLogs / eth_newFilter / eth_subscribe("logs")):

* ``fromBlock`` / ``toBlock``: a block number or tag (default ``latest``); ``blockHash``: one
  block, exclusive with both (-32602 "cannot specify both BlockHash and FromBlock/ToBlock,
  choose one or the other"). Unknown keys are ignored, null means absent.
* ``address``: one address or a list (at most 1,000); a log matches if it was emitted by any.
* ``topics``: at most 4 positions; position ``i`` is null (any), a topic, or a list of topics
  (at most 1,000; any of them matches, a null inside the list makes the position a wildcard).
  A log matches only if it has at least as many topics as there are positions.
* A block whose ``logsBloom`` cannot contain a match is skipped without reading its receipts.

Filters (:class:`FilterManager`, thread-safe, in memory, shared by every connection):

* three kinds: logs (new matching logs, each block's logs in order), blocks (new block hashes)
  and pending transactions (hashes, or full objects when installed with ``fullTx``);
  eth_getFilterChanges returns and clears what arrived since the previous poll.
* a filter expires ``timeout`` seconds (geth: 5 minutes) after it was installed or last polled
  with eth_getFilterChanges, measured on an injectable monotonic clock; an expired or unknown
  id answers -32000 "filter not found" (eth_uninstallFilter answers false).
* a filter that piles up more than ``max_items`` unpolled entries is uninstalled (its next poll
  answers "filter not found", so the client knows it missed events; geth buffers without
  limit).
* ids are 16 random bytes as a hex quantity (geth's ``rpc.NewID``); they carry no meaning.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlp.codec import consume_length_prefix

from cybermiles.chain.receipts import Log, Receipt, bloom_bits
from cybermiles.chain.transactions import Transaction
from cybermiles.rpc import format as fmt
from cybermiles.rpc import params as p
from cybermiles.rpc.errors import ParamError, RpcError, ServerError
from cybermiles.rpc.lookup import BlockInfo
from cybermiles.rpc.params import BlockRef

log = logging.getLogger("cybermiles.rpc")

MAX_TOPICS = 4
MAX_SUB_TOPICS = 1000
MAX_ADDRESSES = 1000
FILTER_TIMEOUT = 300.0  # seconds without a poll before a filter is dropped (geth: 5 minutes)
MAX_FILTER_ITEMS = 100_000  # unpolled entries one filter may hold before it is dropped
LIMIT_EXCEEDED = -32005  # EIP-1474 "limit exceeded"


class LimitExceeded(RpcError):
    """A query over the node's limits (block range, result count)."""

    code = LIMIT_EXCEEDED


class FilterNotFound(ServerError):
    def __init__(self) -> None:
        super().__init__("filter not found")


def new_id() -> str:
    """16 random bytes as a hex quantity, like geth's filter and subscription ids."""
    return hex(int.from_bytes(secrets.token_bytes(16), "big"))


# --- criteria ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogCriteria:
    """Which logs a query wants. ``topics[i] == ()`` is a wildcard position."""

    from_block: BlockRef | None = None
    to_block: BlockRef | None = None
    block_hash: bytes | None = None
    addresses: tuple[bytes, ...] = ()
    topics: tuple[tuple[bytes, ...], ...] = ()
    _address_set: frozenset[bytes] = field(init=False, repr=False, compare=False)
    _topic_sets: tuple[frozenset[bytes], ...] = field(init=False, repr=False, compare=False)
    _address_masks: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _topic_masks: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "_address_set", frozenset(self.addresses))
        setattr_(self, "_topic_sets", tuple(frozenset(options) for options in self.topics))
        setattr_(self, "_address_masks", tuple({bloom_bits(a) for a in self.addresses}))
        setattr_(
            self,
            "_topic_masks",
            tuple(tuple({bloom_bits(t) for t in options}) for options in self.topics if options),
        )

    def bloom_may_match(self, bloom: int) -> bool:
        """False when a block (or receipt) with this ``logsBloom`` has no matching log."""
        if self._address_masks and not any(bloom & m == m for m in self._address_masks):
            return False
        return all(any(bloom & m == m for m in masks) for masks in self._topic_masks)

    def matches(self, entry: Log) -> bool:
        if self._address_set and entry.address not in self._address_set:
            return False
        if len(self._topic_sets) > len(entry.topics):
            return False
        return all(
            not options or topic in options
            for options, topic in zip(self._topic_sets, entry.topics, strict=False)
        )


def parse_criteria(value: Any, name: str) -> LogCriteria:
    """A filter object per the module rules; null is the empty filter (latest block, any log)."""
    if value is None:
        return LogCriteria()
    if not isinstance(value, dict):
        raise ParamError(name, "expected a filter object")
    block_hash = value.get("blockHash")
    from_raw, to_raw = value.get("fromBlock"), value.get("toBlock")
    if block_hash is not None and (from_raw is not None or to_raw is not None):
        raise ParamError(
            name, "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"
        )
    from_name, to_name = f"{name}.fromBlock", f"{name}.toBlock"
    return LogCriteria(
        from_block=None if from_raw is None else p.block_number_or_tag(from_raw, from_name),
        to_block=None if to_raw is None else p.block_number_or_tag(to_raw, to_name),
        block_hash=None if block_hash is None else p.hash32(block_hash, f"{name}.blockHash"),
        addresses=_parse_addresses(value.get("address"), f"{name}.address"),
        topics=_parse_topics(value.get("topics"), f"{name}.topics"),
    )


def _parse_addresses(value: Any, name: str) -> tuple[bytes, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (p.address(value, name),)
    if not isinstance(value, list):
        raise ParamError(name, "invalid addresses in query")
    if len(value) > MAX_ADDRESSES:
        raise ParamError(name, "exceed max addresses")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ParamError(name, f"non-string address at index {i}")
        out.append(p.address(item, name))
    return tuple(out)


def _parse_topics(value: Any, name: str) -> tuple[tuple[bytes, ...], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ParamError(name, "invalid topic(s)")
    if len(value) > MAX_TOPICS:
        raise ParamError(name, "exceed max topics")
    positions: list[tuple[bytes, ...]] = []
    for item in value:
        if item is None:
            positions.append(())
        elif isinstance(item, str):
            positions.append((_topic(item, name),))
        elif isinstance(item, list):
            if len(item) > MAX_SUB_TOPICS:
                raise ParamError(name, "exceed max topics")
            options: list[bytes] = []
            for option in item:
                if option is None:  # a null alternative matches anything (geth)
                    options = []
                    break
                if not isinstance(option, str):
                    raise ParamError(name, "invalid topic(s)")
                options.append(_topic(option, name))
            positions.append(tuple(options))
        else:
            raise ParamError(name, "invalid topic(s)")
    return tuple(positions)


def _topic(value: str, name: str) -> bytes:
    return p.fixed_bytes(value, name, 32, "a topic")


# --- logs of one block ------------------------------------------------------------------------


def header_bloom(raw: bytes) -> int:
    """The ``logsBloom`` of an RLP-encoded header (its 7th field), without decoding the rest.

    A full header decode costs ~0.3 ms; this ~15 µs, so range scans can test every header.
    """
    _, _, _, pos = consume_length_prefix(raw, 0)
    for _ in range(6):  # parentHash, ommersHash, coinbase, stateRoot, txRoot, receiptsRoot
        _, _, length, start = consume_length_prefix(raw, pos)
        pos = start + length
    _, _, length, start = consume_length_prefix(raw, pos)
    if length != 256:
        raise ValueError("not a block header: logsBloom must be 256 bytes")
    return int.from_bytes(raw[start : start + 256], "big")


def block_logs(
    info: BlockInfo,
    receipts: Sequence[Receipt],
    tx_hash: Callable[[int], bytes],
    criteria: LogCriteria,
) -> list[fmt.Json]:
    """The logs of one block matching ``criteria``, as spec log objects in block order.

    ``tx_hash(i)`` gives the hash of the block's ``i``-th transaction (called for matches only).
    """
    if not info.header.bloom or not criteria.bloom_may_match(info.header.bloom):
        return []
    out = []
    log_index = 0
    for tx_index, receipt in enumerate(receipts):
        if receipt.logs and criteria.bloom_may_match(int.from_bytes(receipt.bloom, "big")):
            for offset, entry in enumerate(receipt.logs):
                if criteria.matches(entry):
                    ctx = info.tx_context(tx_index)
                    out.append(fmt.log_entry(entry, log_index + offset, tx_hash(tx_index), ctx))
        log_index += len(receipt.logs)
    return out


class BlockEvent:
    """A block just committed, as filters and subscriptions consume it (one per block)."""

    def __init__(
        self,
        header: Any,
        block_hash: bytes,
        txs: Sequence[Transaction],
        receipts: Sequence[Receipt],
    ) -> None:
        self.info = BlockInfo(int(header.block_number), header, block_hash)
        self.transactions = txs
        self.receipts = receipts
        self.hash_hex = fmt.data(block_hash)

    @property
    def number(self) -> int:
        return self.info.number

    def logs(self, criteria: LogCriteria) -> list[fmt.Json]:
        return block_logs(self.info, self.receipts, lambda i: self.transactions[i].hash, criteria)


# --- polling filters --------------------------------------------------------------------------

LOGS, BLOCKS, PENDING = "logs", "blocks", "pending"


@dataclass(eq=False, slots=True)
class _Filter:
    kind: str
    deadline: float
    criteria: LogCriteria | None = None
    first: int | None = None  # log filters: lowest block number wanted (None: any)
    last: int | None = None  # log filters: highest block number wanted (None: any)
    full_tx: bool = False
    items: list[Any] = field(default_factory=list)


def _bound(ref: BlockRef | None) -> int | None:
    """A log filter's numeric bound; tags other than ``earliest`` leave the side open."""
    return None if ref is None or ref.is_head else ref.number


class FilterManager:
    """The installed filters of one node (see the module docstring for the rules)."""

    def __init__(
        self,
        *,
        timeout: float = FILTER_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        max_items: int = MAX_FILTER_ITEMS,
    ) -> None:
        self.timeout = timeout
        self.clock = clock
        self.max_items = max_items
        self._lock = threading.Lock()
        self._filters: dict[str, _Filter] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        """The number of live (unexpired) filters."""
        with self._lock:
            now = self.clock()
            return sum(1 for entry in self._filters.values() if now < entry.deadline)

    # ------------------------------------------------------------------ installing

    def new_log_filter(self, criteria: LogCriteria) -> str:
        """Install a log filter; ``criteria`` was validated by the caller."""
        first, last = _bound(criteria.from_block), _bound(criteria.to_block)
        return self._install(_Filter(LOGS, 0.0, criteria, first, last))

    def new_block_filter(self) -> str:
        return self._install(_Filter(BLOCKS, 0.0))

    def new_pending_filter(self, full_tx: bool = False) -> str:
        return self._install(_Filter(PENDING, 0.0, full_tx=full_tx))

    def _install(self, entry: _Filter) -> str:
        filter_id = new_id()
        with self._lock:
            now = self.clock()
            self._sweep(now)
            entry.deadline = now + self.timeout
            self._filters[filter_id] = entry
        return filter_id

    def uninstall(self, filter_id: str) -> bool:
        with self._lock:
            entry = self._live(filter_id, self.clock())
            if entry is None:
                return False
            del self._filters[filter_id]
            return True

    # ------------------------------------------------------------------ polling

    def changes(self, filter_id: str) -> list[Any]:
        """What arrived since the last poll (eth_getFilterChanges); renews the deadline."""
        with self._lock:
            now = self.clock()
            entry = self._live(filter_id, now)
            if entry is None:
                raise FilterNotFound()
            entry.deadline = now + self.timeout
            items, entry.items = entry.items, []
            kind, full_tx = entry.kind, entry.full_tx
        if kind == PENDING:
            return [fmt.transaction(tx, None) if full_tx else fmt.data(tx.hash) for tx in items]
        return items

    def log_criteria(self, filter_id: str) -> LogCriteria:
        """The criteria of a log filter (eth_getFilterLogs; does not renew the deadline)."""
        with self._lock:
            entry = self._live(filter_id, self.clock())
            if entry is None or entry.criteria is None:
                raise FilterNotFound()
            return entry.criteria

    def _live(self, filter_id: Any, now: float) -> _Filter | None:
        entry = self._filters.get(filter_id) if isinstance(filter_id, str) else None
        if entry is not None and now >= entry.deadline:
            del self._filters[filter_id]
            return None
        return entry

    def _sweep(self, now: float) -> None:
        """Drop expired filters (at most once per second of clock time)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        for filter_id in [k for k, f in self._filters.items() if now >= f.deadline]:
            del self._filters[filter_id]

    # ------------------------------------------------------------------ events (any thread)

    def wants(self, kind: str) -> bool:
        """Whether any installed filter consumes events of ``kind`` (a cheap pre-check)."""
        with self._lock:
            return any(f.kind == kind for f in self._filters.values())

    def on_block(self, event: BlockEvent) -> None:
        with self._lock:
            self._sweep(self.clock())
            targets = list(self._filters.items())
        additions: list[tuple[str, list[Any]]] = []
        for filter_id, entry in targets:
            if entry.kind == BLOCKS:
                additions.append((filter_id, [event.hash_hex]))
            elif entry.kind == LOGS and self._in_range(entry, event):
                assert entry.criteria is not None
                found = event.logs(entry.criteria)
                if found:
                    additions.append((filter_id, found))
        self._append(additions)

    @staticmethod
    def _in_range(entry: _Filter, event: BlockEvent) -> bool:
        criteria = entry.criteria
        if criteria is not None and criteria.block_hash is not None:
            return criteria.block_hash == event.info.hash
        if entry.first is not None and event.number < entry.first:
            return False
        return entry.last is None or event.number <= entry.last

    def on_pending(self, txs: Iterable[Transaction]) -> None:
        batch = list(txs)
        with self._lock:
            targets = [k for k, f in self._filters.items() if f.kind == PENDING]
        self._append([(filter_id, batch) for filter_id in targets])

    def _append(self, additions: list[tuple[str, list[Any]]]) -> None:
        if not additions:
            return
        with self._lock:
            for filter_id, items in additions:
                entry = self._filters.get(filter_id)
                if entry is None:
                    continue
                entry.items.extend(items)
                if len(entry.items) > self.max_items:
                    log.warning("filter %s dropped: too many unpolled entries", filter_id)
                    del self._filters[filter_id]
