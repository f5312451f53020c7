"""Logs, filters and subscriptions: geth's filter API (eth_getLogs, eth_newFilter & co.,
eth_subscribe / eth_unsubscribe).

Rules (criteria parsing and filter lifetime: ``rpc.filters``; subscriptions:
``rpc.subscriptions``):

* eth_getLogs: ``blockHash`` names one block (unknown: -32000 "unknown block"); otherwise
  ``fromBlock``..``toBlock`` inclusive, each defaulting to ``latest`` (latest / safe / finalized
  are the head, earliest is 0, ``pending`` -> -32000 "pending logs are not supported").
  fromBlock > toBlock -> -32602 "invalid block range params"; toBlock above the head -> -32602
  "block range extends beyond current head block"; more than ``MAX_BLOCK_RANGE`` blocks ->
  -32005 "exceed maximum block range: 10000"; more than ``MAX_RESULTS`` logs -> -32005 "query
  returned more than 10000 results". Logs come in block order with ``logIndex`` counted across
  the block, ``removed`` false.
* eth_newFilter takes the same criteria (``pending`` refused, numeric fromBlock > toBlock
  refused) and collects logs of blocks committed afterwards that fall inside its numeric
  bounds (a ``blockHash`` filter collects nothing new; geth would collect every new log);
  eth_getFilterLogs runs eth_getLogs with its criteria. eth_newBlockFilter collects
  block hashes, eth_newPendingTransactionFilter([fullTx]) pending transactions.
* eth_getFilterChanges / eth_getFilterLogs on an unknown, expired or (for getFilterLogs)
  non-log filter -> -32000 "filter not found"; eth_uninstallFilter answers true or false.
"""

from __future__ import annotations

from typing import Any

from cybermiles.chain.store import StoredTx
from cybermiles.crypto.keccak import keccak256
from cybermiles.rpc import format as fmt
from cybermiles.rpc import lookup
from cybermiles.rpc import params as p
from cybermiles.rpc.errors import InvalidParams, ParamError, ServerError
from cybermiles.rpc.filters import (
    LimitExceeded,
    LogCriteria,
    block_logs,
    header_bloom,
    new_id,
    parse_criteria,
)
from cybermiles.rpc.params import BlockRef
from cybermiles.rpc.registry import MethodTable
from cybermiles.rpc.session import Session
from cybermiles.rpc.subscriptions import (
    KINDS,
    NEW_HEADS,
    NEW_PENDING,
    NotificationsUnsupported,
    Subscription,
    SubscriptionNotFound,
    UnknownSubscription,
    events_for,
)

MAX_BLOCK_RANGE = 10_000
MAX_RESULTS = 10_000

methods = MethodTable()


# --- eth_getLogs ------------------------------------------------------------------------------


class PendingLogsUnsupported(ServerError):
    def __init__(self) -> None:
        super().__init__("pending logs are not supported")


def _height(ref: BlockRef | None, head: int) -> int:
    if ref is None or ref.is_head:
        return head
    assert ref.number is not None
    return ref.number


def _refuse_pending(criteria: LogCriteria) -> None:
    for ref in (criteria.from_block, criteria.to_block):
        if ref is not None and ref.tag == "pending":
            raise PendingLogsUnsupported()


def search_logs(node: Any, criteria: LogCriteria) -> list[fmt.Json]:
    """eth_getLogs over the stored chain (see the module rules)."""
    if criteria.block_hash is not None:
        number = node.chain.blocks.number_of(criteria.block_hash)
        if number is None:
            raise ServerError("unknown block")
        first = last = int(number)
    else:
        _refuse_pending(criteria)
        head = lookup.head_number(node)
        first, last = _height(criteria.from_block, head), _height(criteria.to_block, head)
        if first > last:
            raise InvalidParams("invalid block range params")
        if last > head:
            raise InvalidParams("block range extends beyond current head block")
        if last - first + 1 > MAX_BLOCK_RANGE:
            raise LimitExceeded(f"exceed maximum block range: {MAX_BLOCK_RANGE}")
    found: list[fmt.Json] = []
    for number in _candidate_blocks(node, criteria, first, last):
        info = lookup.block_at(node, number)
        if info is None:
            raise ServerError("header not found")
        found += _block_matches(node, info, criteria)
        if len(found) > MAX_RESULTS:
            raise LimitExceeded(f"query returned more than {MAX_RESULTS} results")
    return found


def _candidate_blocks(node: Any, criteria: LogCriteria, first: int, last: int) -> list[int]:
    """Heights in ``first..last`` whose logsBloom may hold a match.

    Reads the raw headers in one LMDB read transaction and tests only their blooms (see
    ``filters.header_bloom``): no header is fully decoded.
    """
    candidates = []
    for number, raw in enumerate(node.chain.blocks.raw_headers(first, last), start=first):
        if raw is None:
            raise ServerError("header not found")
        bloom = header_bloom(raw)
        if bloom and criteria.bloom_may_match(bloom):
            candidates.append(number)
    return candidates


def _block_matches(node: Any, info: lookup.BlockInfo, criteria: LogCriteria) -> list[fmt.Json]:
    stored: list[StoredTx] | None = None

    def tx_hash(index: int) -> bytes:
        nonlocal stored
        if stored is None:
            stored = lookup.body(node, info)
        return keccak256(stored[index].raw)

    return block_logs(info, lookup.receipts(node, info), tx_hash, criteria)


@methods.method("eth_getLogs")
def get_logs(node: Any, filter: Any) -> list[fmt.Json]:
    return search_logs(node, parse_criteria(filter, "filter"))


# --- filters ----------------------------------------------------------------------------------


def _filter_id(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ParamError(name, "expected a filter id (hex string)")
    return value


@methods.method("eth_newFilter")
def new_filter(node: Any, filter: Any) -> str:
    criteria = parse_criteria(filter, "filter")
    _refuse_pending(criteria)
    first, last = criteria.from_block, criteria.to_block
    if (
        first is not None
        and last is not None
        and first.number is not None
        and last.number is not None
        and first.number > last.number
    ):
        raise InvalidParams("invalid block range params")
    return events_for(node).filters.new_log_filter(criteria)


@methods.method("eth_newBlockFilter")
def new_block_filter(node: Any) -> str:
    return events_for(node).filters.new_block_filter()


@methods.method("eth_newPendingTransactionFilter")
def new_pending_transaction_filter(node: Any, full_tx: Any = None) -> str:
    full = False if full_tx is None else p.boolean(full_tx, "full_tx")
    return events_for(node).filters.new_pending_filter(full)


@methods.method("eth_getFilterChanges")
def get_filter_changes(node: Any, filter_id: Any) -> list[Any]:
    return events_for(node).filters.changes(_filter_id(filter_id, "filter_id"))


@methods.method("eth_getFilterLogs")
def get_filter_logs(node: Any, filter_id: Any) -> list[fmt.Json]:
    criteria = events_for(node).filters.log_criteria(_filter_id(filter_id, "filter_id"))
    return search_logs(node, criteria)


@methods.method("eth_uninstallFilter")
def uninstall_filter(node: Any, filter_id: Any) -> bool:
    return events_for(node).filters.uninstall(_filter_id(filter_id, "filter_id"))


# --- subscriptions ----------------------------------------------------------------------------


@methods.method("eth_subscribe")
def subscribe(node: Any, kind: Any, options: Any = None, *, session: Session) -> str:
    if not session.can_notify:
        raise NotificationsUnsupported()
    if not isinstance(kind, str):
        raise InvalidParams("expected subscription name as first argument")
    if kind not in KINDS:
        raise UnknownSubscription(kind)
    events = events_for(node)
    sub = Subscription(new_id(), kind, session)
    if kind == NEW_HEADS:
        if options is not None:
            raise InvalidParams("too many arguments, want at most 1")
    elif kind == NEW_PENDING:
        sub.full_tx = False if options is None else p.boolean(options, "options")
    else:
        sub.criteria = parse_criteria(options, "options")
        if sub.criteria.from_block is not None or sub.criteria.to_block is not None:
            raise ServerError("log subscription does not support history block range")
    events.subscriptions.add(sub)
    return sub.id


@methods.method("eth_unsubscribe")
def unsubscribe(node: Any, subscription_id: Any, *, session: Session) -> bool:
    if not events_for(node).subscriptions.remove(session, subscription_id):
        raise SubscriptionNotFound()
    return True
