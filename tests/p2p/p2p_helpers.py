"""Helpers for the p2p tests: fast-timeout switches on loopback and a scriptable raw peer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cybermiles.p2p import NodeInfo, P2PConfig, Peer, SecretConnection, Switch, node_id_of
from cybermiles.p2p.handshake import exchange_node_info

CHAIN_ID = 1234
GENESIS = bytes(range(32))
CHAT = 0x20
BLOB = 0x21
TEST_TIMEOUT = 20.0


OPEN_WRITERS: list[asyncio.StreamWriter] = []


def track(writer: asyncio.StreamWriter) -> asyncio.StreamWriter:
    """Have :func:`run` close ``writer`` (a test-side socket) when the test ends."""
    OPEN_WRITERS.append(writer)
    return writer


def run(coro: Awaitable[Any], timeout: float = TEST_TIMEOUT) -> Any:
    """Run ``coro`` in a fresh event loop with an overall timeout; close tracked sockets."""

    async def main() -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await coro
        finally:
            while OPEN_WRITERS:
                writer = OPEN_WRITERS.pop()
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    return asyncio.run(main())


def fast_config(**overrides: Any) -> P2PConfig:
    base = P2PConfig(
        listen_addr="127.0.0.1:0",
        handshake_timeout=2.0,
        dial_timeout=2.0,
        ping_interval=5.0,
        pong_timeout=5.0,
        write_timeout=5.0,
        dial_backoff_base=0.05,
        dial_backoff_max=0.4,
        ban_seconds=60.0,
    )
    return replace(base, **overrides)


class Inbox:
    """A channel handler that records ``(peer node id, payload)``."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def __call__(self, peer: Peer, payload: bytes) -> None:
        await self.queue.put((peer.node_id, payload))

    async def get(self, timeout: float = 5.0) -> tuple[str, bytes]:
        async with asyncio.timeout(timeout):
            return await self.queue.get()


def make_switch(
    *,
    key: Ed25519PrivateKey | None = None,
    chain_id: int = CHAIN_ID,
    genesis: bytes = GENESIS,
    channels: tuple[int, ...] = (CHAT, BLOB),
    **config: Any,
) -> tuple[Switch, dict[int, Inbox]]:
    switch = Switch(
        key or Ed25519PrivateKey.generate(),
        fast_config(**config),
        chain_id=chain_id,
        genesis_hash=genesis,
        moniker="test",
        version="test",
    )
    inboxes = {}
    for channel in channels:
        inboxes[channel] = Inbox()
        switch.register_channel(channel, inboxes[channel], max_message_size=64 * 1024)
    return switch, inboxes


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def connected(a: Switch, b: Switch, timeout: float = 5.0) -> None:
    await eventually(lambda: b.node_id in a.peers and a.node_id in b.peers, timeout)


async def is_refused(
    host: str, port: int, local_host: str = "127.0.0.1", timeout: float = 2.0
) -> bool:
    """True when the server closes a fresh connection from ``local_host`` without a hello."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=(local_host, 0))
    track(writer)
    try:
        async with asyncio.timeout(timeout):
            data = await reader.read(64)
        return data == b""
    except (ConnectionError, TimeoutError):
        return True
    finally:
        writer.close()


class RawPeer:
    """A hand-driven peer: real handshake, then arbitrary bytes or messages."""

    def __init__(self, key: Ed25519PrivateKey | None = None) -> None:
        self.key = key or Ed25519PrivateKey.generate()
        self.node_id = node_id_of(self.key)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.conn: SecretConnection | None = None
        self.remote_info: NodeInfo | None = None

    def info(self, **overrides: Any) -> NodeInfo:
        fields: dict[str, Any] = {
            "node_id": self.node_id,
            "listen_addr": "",
            "chain_id": CHAIN_ID,
            "genesis_hash": GENESIS,
            "moniker": "raw",
            "channels": (CHAT, BLOB),
        }
        fields.update(overrides)
        return NodeInfo(**fields)

    async def open(self, switch: Switch, local_host: str = "127.0.0.1") -> None:
        addr = switch.listen_address
        self.reader, self.writer = await asyncio.open_connection(
            addr.host, addr.port, local_addr=(local_host, 0)
        )
        track(self.writer)

    async def secret(self) -> SecretConnection:
        assert self.reader is not None and self.writer is not None
        self.conn = await SecretConnection.handshake(self.reader, self.writer, self.key, timeout=3)
        return self.conn

    async def connect(self, switch: Switch, local_host: str = "127.0.0.1", **info: Any) -> None:
        """TCP + secret connection + NodeInfo exchange."""
        await self.open(switch, local_host)
        conn = await self.secret()
        self.remote_info = await exchange_node_info(conn, self.info(**info), timeout=3)

    async def send(self, channel: int, payload: bytes) -> None:
        assert self.conn is not None
        await self.conn.write_message(bytes([channel]) + payload)

    async def write_raw(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()

    async def closed_by_remote(self, timeout: float = 5.0) -> bool:
        """Read until EOF (discarding data); True if the remote closed within ``timeout``."""
        assert self.reader is not None
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
            return True
        except ConnectionError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
