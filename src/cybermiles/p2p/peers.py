"""Peer addresses, the ban list, the p2p config, and a connected :class:`Peer`.

A peer's traffic on its secret connection is a sequence of messages ``channel id (1 byte) ||
payload``. Channel 0 is the switch's own control channel: ``0x00 0x01`` is a ping and
``0x00 0x02`` a pong; anything else on channel 0 is a protocol error.

Each peer runs three tasks:

- *recv*: reads messages, answers pings, passes the rest to the switch (which awaits the
  channel handler, so one peer's messages are handled in order and a slow handler slows only
  that peer, through TCP flow control);
- *send*: writes the control messages first, then the queued messages, then waits for the
  socket to drain; a drain that takes longer than ``write_timeout`` disconnects the peer;
- *ping*: every ``ping_interval`` sends a ping; no pong within ``pong_timeout`` disconnects.

Send queue policy: each peer has a bounded queue of ``send_queue_size`` messages.
:meth:`Peer.try_send` never blocks: when the queue is full the message is dropped, counted in
``Peer.dropped`` and ``False`` is returned. Reactors gossip (they resend what a peer still lacks)
so a drop only delays. A peer that stops reading is disconnected by the drain timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .errors import P2PError, ProtocolError, SlowPeer
from .handshake import NodeInfo
from .keys import is_node_id
from .secret import LimitFor, SecretConnection

log = logging.getLogger("cybermiles.p2p")

CONTROL_CHANNEL = 0
PING = b"\x00\x01"
PONG = b"\x00\x02"
DEFAULT_P2P_PORT = 26656


# -- addresses ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetAddress:
    """``node_id@host:port`` (the id may be empty for a listen address). IPv6 as ``[::1]:p``."""

    host: str
    port: int
    node_id: str = ""

    @classmethod
    def parse(cls, text: str, *, require_id: bool = False) -> NetAddress:
        """Parse ``[id@]host:port``; ValueError names what is wrong."""
        original = text
        node_id = ""
        if "@" in text:
            node_id, text = text.split("@", 1)
            if not is_node_id(node_id):
                raise ValueError(f"{original!r}: node id must be 40 lowercase hex digits")
        elif require_id:
            raise ValueError(f"{original!r}: expected node_id@host:port")
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or not rest.startswith(":"):
                raise ValueError(f"{original!r}: bad IPv6 address")
            port_text = rest[1:]
        else:
            host, sep, port_text = text.rpartition(":")
            if not sep:
                raise ValueError(f"{original!r}: expected host:port")
        if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"{original!r}: expected host:port with a port 0..65535")
        return cls(host, int(port_text), node_id)

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.node_id}@{self.hostport}" if self.node_id else self.hostport


def normalize_ip(host: str) -> str:
    """The canonical text of an IP (IPv4-mapped IPv6 addresses become IPv4)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


# -- config -------------------------------------------------------------------------------


@dataclass(slots=True)
class P2PConfig:
    """The ``[p2p]`` settings. Durations are seconds; sizes bytes.

    ``persistent_peers`` are dialed for ever (exponential backoff between ``dial_backoff_base``
    and ``dial_backoff_max``, with jitter) and redialed when they drop; they may exceed
    ``max_outbound``, and an inbound persistent peer may exceed ``max_inbound``. ``seeds`` are
    dialed with the same backoff until one connection succeeds (address exchange comes later).
    """

    listen_addr: str = f"0.0.0.0:{DEFAULT_P2P_PORT}"
    external_addr: str = ""
    persistent_peers: list[str] = field(default_factory=list)
    seeds: list[str] = field(default_factory=list)
    max_inbound: int = 40
    max_outbound: int = 10
    handshake_timeout: float = 10.0
    dial_timeout: float = 5.0
    ping_interval: float = 30.0
    pong_timeout: float = 15.0
    write_timeout: float = 20.0
    send_queue_size: int = 1024
    max_message_size: int = 16 * 1024 * 1024
    dial_backoff_base: float = 1.0
    dial_backoff_max: float = 60.0
    ban_seconds: float = 3600.0

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        NetAddress.parse(self.listen_addr)
        if self.external_addr:
            NetAddress.parse(self.external_addr)
        for name in ("persistent_peers", "seeds"):
            for entry in getattr(self, name):
                NetAddress.parse(entry, require_id=True)
        for name in ("max_inbound", "max_outbound", "send_queue_size", "max_message_size"):
            if getattr(self, name) < (0 if name.startswith("max_") else 1):
                raise ValueError(f"p2p.{name}: must not be negative")
        for name in (
            "handshake_timeout",
            "dial_timeout",
            "ping_interval",
            "pong_timeout",
            "write_timeout",
            "dial_backoff_base",
            "dial_backoff_max",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"p2p.{name}: must be > 0")
        if self.ban_seconds < 0:
            raise ValueError("p2p.ban_seconds: must be >= 0")


# -- bans ---------------------------------------------------------------------------------


class BanList:
    """Node ids and IPs refused until a deadline (``time.monotonic``); kept in memory only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ids: dict[str, tuple[float, str]] = {}
        self._ips: dict[str, tuple[float, str]] = {}

    def ban(self, *, node_id: str = "", ip: str = "", seconds: float, reason: str) -> None:
        until = self._clock() + seconds
        if node_id:
            self._ids[node_id] = (max(until, self._ids.get(node_id, (0.0, ""))[0]), reason)
        if ip:
            ip = normalize_ip(ip)
            self._ips[ip] = (max(until, self._ips.get(ip, (0.0, ""))[0]), reason)

    def _remaining(self, table: dict[str, tuple[float, str]], key: str) -> float:
        entry = table.get(key)
        if entry is None:
            return 0.0
        left = entry[0] - self._clock()
        if left <= 0:
            del table[key]
            return 0.0
        return left

    def id_ban_remaining(self, node_id: str) -> float:
        """Seconds left on the ban of ``node_id`` (0 if not banned)."""
        return self._remaining(self._ids, node_id)

    def ip_ban_remaining(self, ip: str) -> float:
        return self._remaining(self._ips, normalize_ip(ip))

    def is_banned(self, *, node_id: str = "", ip: str = "") -> bool:
        return bool(
            (node_id and self.id_ban_remaining(node_id) > 0)
            or (ip and self.ip_ban_remaining(ip) > 0)
        )

    def reason(self, *, node_id: str = "", ip: str = "") -> str:
        """Why ``node_id`` (or else ``ip``) was banned; "" if it is not banned."""
        if node_id and self.id_ban_remaining(node_id) > 0:
            return self._ids[node_id][1]
        if ip and self.ip_ban_remaining(ip) > 0:
            return self._ips[normalize_ip(ip)][1]
        return ""


# -- peers --------------------------------------------------------------------------------

MessageSink = Callable[["Peer", int, bytes], Awaitable[None]]
StopSink = Callable[["Peer", BaseException | None], None]


class Peer:
    """A connected, authenticated, compatible peer. Created and owned by the Switch."""

    def __init__(
        self,
        conn: SecretConnection,
        info: NodeInfo,
        *,
        outbound: bool,
        persistent: bool,
        config: P2PConfig,
    ) -> None:
        self.conn = conn
        self.info = info
        self.outbound = outbound
        self.persistent = persistent
        self.ip, self.port = conn.remote_address
        self.ip = normalize_ip(self.ip)
        self.connected_at = time.monotonic()
        self.dropped = 0
        self.error: BaseException | None = None
        self._config = config
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._pong_due = False
        self._ping_due = False
        self._pong_received = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self._on_stop: StopSink | None = None

    @property
    def node_id(self) -> str:
        return self.info.node_id

    @property
    def channels(self) -> frozenset[int]:
        return frozenset(self.info.channels)

    @property
    def is_running(self) -> bool:
        return bool(self._tasks) and not self._stopped.is_set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def __repr__(self) -> str:
        direction = "out" if self.outbound else "in"
        return f"<Peer {self.node_id[:12]} {self.ip}:{self.port} {direction}>"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, on_message: MessageSink, limit_for: LimitFor, on_stop: StopSink) -> None:
        self._on_stop = on_stop
        self._tasks = [
            asyncio.create_task(self._recv_loop(on_message, limit_for), name=f"p2p-recv-{self}"),
            asyncio.create_task(self._send_loop(), name=f"p2p-send-{self}"),
            asyncio.create_task(self._ping_loop(), name=f"p2p-ping-{self}"),
        ]

    def stop(self, error: BaseException | None = None) -> None:
        """Disconnect (idempotent). ``error`` is why; the switch bans on misbehavior."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.error = error
        if error is None:
            self.conn.close()
        else:
            self.conn.abort()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        if self._on_stop is not None:
            self._on_stop(self, error)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def join(self) -> None:
        """Wait for the peer's tasks to finish after :meth:`stop`."""
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.conn.wait_closed()

    # -- sending -----------------------------------------------------------------------------

    def try_send(self, message: bytes) -> bool:
        """Queue ``channel byte || payload``; False (and counted) when full or stopped."""
        if self._stopped.is_set():
            return False
        if len(self._queue) >= self._config.send_queue_size:
            self.dropped += 1
            return False
        self._queue.append(message)
        self._wake.set()
        return True

    async def _send_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._pong_due:
                    self._pong_due = False
                    self.conn.buffer_message(PONG)
                if self._ping_due:
                    self._ping_due = False
                    self.conn.buffer_message(PING)
                while self._queue:
                    self.conn.buffer_message(self._queue.popleft())
                try:
                    async with asyncio.timeout(self._config.write_timeout):
                        await self.conn.drain()
                except TimeoutError as exc:
                    raise SlowPeer(f"write did not drain in {self._config.write_timeout}s") from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)

    # -- receiving ---------------------------------------------------------------------------

    async def _recv_loop(self, on_message: MessageSink, limit_for: LimitFor) -> None:
        try:
            while True:
                message = await self.conn.read_message(limit_for)
                channel = message[0]
                if channel == CONTROL_CHANNEL:
                    self._on_control(message)
                    continue
                await on_message(self, channel, message[1:])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)

    def _on_control(self, message: bytes) -> None:
        if message == PING:
            self._pong_due = True
            self._wake.set()
        elif message == PONG:
            self._pong_received.set()
        else:
            raise ProtocolError(f"invalid control message {message[:8].hex()}")

    async def _ping_loop(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._config.ping_interval * (0.9 + 0.2 * _unit_random()))
                self._pong_received.clear()
                self._ping_due = True
                self._wake.set()
                try:
                    async with asyncio.timeout(self._config.pong_timeout):
                        await self._pong_received.wait()
                except TimeoutError as exc:
                    raise SlowPeer(f"no pong within {self._config.pong_timeout}s") from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if not isinstance(exc, P2PError | OSError):
            log.error("peer %s: unexpected error", self, exc_info=exc)
        self.stop(exc)


def _unit_random() -> float:
    return secrets.randbelow(1 << 30) / (1 << 30)
