"""WebSocket subscriptions (eth_subscribe) and the node events that feed them and the filters.

Subscriptions (geth semantics):

* ``newHeads``: one notification per committed block, the header object (the block without
  ``transactions``, ``uncles``, ``withdrawals`` and ``size``, as geth's RPCMarshalHeader).
* ``logs`` + criteria (address, topics; see ``rpc.filters``; omitted: every log): one
  notification per matching log, in block order, ``removed`` always false (BFT blocks are
  final). ``toBlock`` or
  ``fromBlock`` (geth replays history from ``fromBlock``) -> -32000 "log subscription does not
  support history block range".
* ``newPendingTransactions`` [+ ``true``]: the hash (or the full transaction, block fields
  null) of each transaction entering the pool's pending set (``Mempool.on_added``).
* Notifications are ``{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":
  id,"result":...}}``. A subscription lives until eth_unsubscribe (true; an id unknown on this
  connection: -32000 "subscription not found") or until its socket closes. Over HTTP,
  eth_subscribe answers -32601 "notifications not supported"; an unknown kind -32601
  ``no "x" subscription in eth namespace``.

Node events (:class:`NodeEvents`, one per node, see :func:`attach`): a block-producer listener
and the mempool's ``on_added`` hook (chained to any previous hook) feed the filters and the
subscriptions. Both run on the thread that raised the event (the producer, or the event loop
for a transaction admitted by eth_sendRawTransaction): they match and encode, then hand each
message to the client's session, which queues it on the event loop without waiting. They never
raise into the producer, and skip all work when nothing consumes the event.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import orjson

from cybermiles.chain.transactions import Transaction
from cybermiles.rpc import format as fmt
from cybermiles.rpc.errors import METHOD_NOT_FOUND, RpcError, ServerError
from cybermiles.rpc.filters import BLOCKS, LOGS, PENDING, BlockEvent, FilterManager, LogCriteria
from cybermiles.rpc.session import Session

log = logging.getLogger("cybermiles.rpc")

NEW_HEADS, LOGS_KIND, NEW_PENDING = "newHeads", "logs", "newPendingTransactions"
KINDS = (NEW_HEADS, LOGS_KIND, NEW_PENDING)


class NotificationsUnsupported(RpcError):
    code = METHOD_NOT_FOUND

    def __init__(self) -> None:
        super().__init__("notifications not supported")


class UnknownSubscription(RpcError):
    code = METHOD_NOT_FOUND

    def __init__(self, kind: str) -> None:
        super().__init__(f'no "{kind}" subscription in eth namespace')


class SubscriptionNotFound(ServerError):
    def __init__(self) -> None:
        super().__init__("subscription not found")


def header_json(event: BlockEvent) -> fmt.Json:
    """The newHeads object: the block's header fields and hash."""
    out = fmt.block(event.info.header, event.info.hash, 0, [])
    for key in ("size", "transactions", "uncles", "withdrawals"):
        del out[key]
    return out


def notification(sub_id: str, result: Any) -> bytes:
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": {"subscription": sub_id, "result": result},
        }
    )


@dataclass(eq=False, slots=True)
class Subscription:
    id: str
    kind: str
    session: Session
    criteria: LogCriteria | None = None
    full_tx: bool = False


class SubscriptionRegistry:
    """The live subscriptions of one node, across its WebSocket connections (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, Subscription] = {}
        self._sessions: dict[Session, set[str]] = {}  # the subscription ids of each session

    def __len__(self) -> int:
        with self._lock:
            return len(self._subs)

    def add(self, sub: Subscription) -> None:
        session = sub.session
        with self._lock:
            if session.closed:
                raise NotificationsUnsupported()
            self._subs[sub.id] = sub
            first = session not in self._sessions
            self._sessions.setdefault(session, set()).add(sub.id)
        if first:
            session.on_close(lambda: self.drop_session(session))

    def remove(self, session: Session, sub_id: Any) -> bool:
        """End ``sub_id`` if ``session`` owns it."""
        with self._lock:
            sub = self._subs.get(sub_id) if isinstance(sub_id, str) else None
            if sub is None or sub.session is not session:
                return False
            del self._subs[sub_id]
            self._sessions[session].discard(sub_id)
            return True

    def drop_session(self, session: Session) -> None:
        with self._lock:
            for sub_id in self._sessions.pop(session, ()):
                self._subs.pop(sub_id, None)

    def of_kind(self, kind: str) -> list[Subscription]:
        with self._lock:
            return [sub for sub in self._subs.values() if sub.kind == kind]

    def wants(self, kind: str) -> bool:
        with self._lock:
            return any(sub.kind == kind for sub in self._subs.values())

    # ------------------------------------------------------------------ events (any thread)

    def on_block(self, event: BlockEvent) -> None:
        heads = self.of_kind(NEW_HEADS)
        if heads:
            header = header_json(event)
            for sub in heads:
                _send(sub, header)
        for sub in self.of_kind(LOGS_KIND):
            assert sub.criteria is not None
            for entry in event.logs(sub.criteria):
                _send(sub, entry)

    def on_pending(self, txs: list[Transaction]) -> None:
        for sub in self.of_kind(NEW_PENDING):
            for tx in txs:
                _send(sub, fmt.transaction(tx, None) if sub.full_tx else fmt.data(tx.hash))


def _send(sub: Subscription, result: Any) -> None:
    try:
        sub.session.notify(notification(sub.id, result))
    except Exception:  # e.g. the event loop already closed: the socket is gone anyway
        log.debug("cannot notify subscription %s", sub.id, exc_info=True)


# --- node events ------------------------------------------------------------------------------


class NodeEvents:
    """Feeds one node's block and pending-transaction events to its filters and subscriptions."""

    def __init__(self, producer: Any, mempool: Any) -> None:
        self.producer = producer
        self.mempool = mempool
        self.filters = FilterManager()
        self.subscriptions = SubscriptionRegistry()
        self._previous_on_added: Any = None
        self._refs = 0

    def start(self) -> None:
        self.producer.listeners.append(self.on_block)
        self._previous_on_added = self.mempool.on_added
        self.mempool.on_added = self.on_added

    def stop(self) -> None:
        if self.on_block in self.producer.listeners:
            self.producer.listeners.remove(self.on_block)
        if self.mempool.on_added == self.on_added:
            self.mempool.on_added = self._previous_on_added

    def on_block(self, built: Any) -> None:
        """Producer listener: a block was committed (never raises)."""
        try:
            if not (
                self.filters.wants(BLOCKS)
                or self.filters.wants(LOGS)
                or self.subscriptions.wants(NEW_HEADS)
                or self.subscriptions.wants(LOGS_KIND)
            ):
                return
            event = BlockEvent(built.header, built.hash, built.transactions, built.receipts)
            self.filters.on_block(event)
            self.subscriptions.on_block(event)
        except Exception:
            log.exception("delivering block events failed")

    def on_added(self, tx: Transaction) -> None:
        """Mempool hook: ``tx`` entered the pending set (never raises)."""
        previous = self._previous_on_added
        if previous is not None:
            try:
                previous(tx)
            except Exception:
                log.exception("mempool on_added listener failed")
        try:
            if self.filters.wants(PENDING):
                self.filters.on_pending([tx])
            if self.subscriptions.wants(NEW_PENDING):
                self.subscriptions.on_pending([tx])
        except Exception:
            log.exception("delivering pending transaction events failed")


_nodes: weakref.WeakKeyDictionary[Any, NodeEvents] = weakref.WeakKeyDictionary()
_nodes_lock = threading.Lock()


def attach(node: Any) -> NodeEvents:
    """Start feeding ``node``'s events (the RPC server calls this on startup; reference counted)."""
    with _nodes_lock:
        events = _nodes.get(node)
        if events is None:
            events = _nodes[node] = NodeEvents(node.producer, node.mempool)
            events.start()
        events._refs += 1
        return events


def detach(node: Any) -> None:
    """Undo one :func:`attach`; the last one unhooks the listeners (server cleanup)."""
    with _nodes_lock:
        events = _nodes.get(node)
        if events is None:
            return
        events._refs -= 1
        if events._refs <= 0:
            events.stop()
            del _nodes[node]


def events_for(node: Any) -> NodeEvents:
    """The node's events; attached on first use when no server did it (dispatcher-only use)."""
    with _nodes_lock:
        events = _nodes.get(node)
    return events if events is not None else attach(node)
