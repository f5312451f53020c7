"""One client connection, as seen by handlers.

An HTTP request gets a throwaway ``Session("http")`` that cannot push messages. A WebSocket
keeps one ``Session("ws", send)`` for its lifetime: ``notify`` queues a message to the client
from any thread (the block producer's listeners run in its thread), and ``on_close`` callbacks
run once when the connection ends, so subscriptions can clean up after themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("cybermiles.rpc")


class Session:
    def __init__(self, transport: str, send: Callable[[bytes], None] | None = None) -> None:
        self.transport = transport
        self._send = send
        self._closers: list[Callable[[], None]] = []
        self.closed = False

    @property
    def can_notify(self) -> bool:
        """True for connections that accept server-initiated messages (WebSocket)."""
        return self._send is not None and not self.closed

    def notify(self, payload: bytes) -> None:
        """Queue one encoded JSON message for the client (thread-safe; dropped once closed)."""
        if self._send is None:
            raise RuntimeError(f"{self.transport} connections cannot receive notifications")
        if not self.closed:
            self._send(payload)

    def on_close(self, callback: Callable[[], None]) -> None:
        self._closers.append(callback)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for callback in reversed(self._closers):
            try:
                callback()
            except Exception:
                log.exception("session close callback failed")
        self._closers.clear()
