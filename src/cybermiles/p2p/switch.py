"""The Switch: listens, dials, keeps the set of peers, routes messages by channel, bans.

Connection life cycle (both directions)::

    TCP connect/accept --(IP banned? inbound slots full?)--> SecretConnection.handshake
        --> exchange_node_info (chain id, genesis hash, protocol version, id == key, not self)
        --> expected id (dialing id@host:port)? banned id? duplicate? slots?  --> Peer.start

Any failure closes the socket. A failure that proves misbehavior (``P2PError.misbehavior``:
garbage instead of a hello, bad signature, failed decryption, bad frames, oversize message,
invalid NodeInfo, a lying node id, a message on an unknown channel, ``PeerMisbehavior`` raised by a
handler, or :meth:`Switch.ban` called by a reactor) bans the node id (when authenticated) and the
IP for ``ban_seconds``; banned ids and IPs are refused at accept, after the handshake and when
dialing. Timeouts, EOF (also mid-frame: indistinguishable from a network failure) and
incompatible chains only disconnect.

Duplicate connections (both nodes dialed each other at once) are resolved the same way on both
sides: the connection dialed by the node with the smaller node id wins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import (
    FrameError,
    HandshakeTimeout,
    NodeIdMismatch,
    P2PError,
    PeerMisbehavior,
    PeerRefused,
    UnknownChannel,
)
from .handshake import P2P_PROTOCOL_VERSION, NodeInfo, exchange_node_info
from .keys import node_id_of
from .peers import CONTROL_CHANNEL, BanList, NetAddress, P2PConfig, Peer, _unit_random
from .secret import SecretConnection

log = logging.getLogger("cybermiles.p2p")

Handler = Callable[[Peer, bytes], Awaitable[None]]
PeerListener = Callable[[Peer], None]
DEFAULT_CHANNEL_MAX_MESSAGE_SIZE = 1024 * 1024
CONTROL_MESSAGE_SIZE = 2
STABLE_CONNECTION_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Channel:
    channel_id: int
    handler: Handler
    max_message_size: int


class Switch:
    """Peer manager and message router of one node.

    Parameters
    ----------
    node_key
        The node's Ed25519 identity (see :mod:`cybermiles.p2p.keys`).
    config
        Listen address, peers to dial, limits, timeouts.
    chain_id, genesis_hash
        Peers must have the same.
    moniker, version
        Sent in NodeInfo, informational.
    """

    def __init__(
        self,
        node_key: Ed25519PrivateKey,
        config: P2PConfig,
        *,
        chain_id: int,
        genesis_hash: bytes,
        moniker: str = "node",
        version: str = "",
    ) -> None:
        config.validate()
        self.config = config
        self.node_key = node_key
        self.node_id = node_id_of(node_key)
        self.chain_id = chain_id
        self.genesis_hash = genesis_hash
        self.moniker = moniker
        self.version = version
        self.bans = BanList()
        self._channels: dict[int, Channel] = {}
        self._peers: dict[str, Peer] = {}
        self._pending_inbound = 0
        self._server: asyncio.Server | None = None
        self._listen: NetAddress | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._dialing: set[str] = set()
        self._added: list[PeerListener] = []
        self._removed: list[PeerListener] = []
        self._running = False
        self._persistent_ids = {
            NetAddress.parse(entry, require_id=True).node_id for entry in config.persistent_peers
        }

    # -- setup -------------------------------------------------------------------------------

    def register_channel(
        self,
        channel_id: int,
        handler: Handler,
        *,
        max_message_size: int = DEFAULT_CHANNEL_MAX_MESSAGE_SIZE,
    ) -> None:
        """Route messages on ``channel_id`` (1..255) to ``handler(peer, payload)``.

        ``max_message_size`` bounds the payload; a peer sending more is banned. Channels are
        announced in NodeInfo, so they must be registered before :meth:`start`.

        Handlers run on the peer's receive task, one message at a time: a handler that blocks
        also delays that peer's pongs, so queue long work (block execution) elsewhere instead
        of awaiting it for longer than ``pong_timeout``. Raise PeerMisbehavior (or call
        :meth:`ban`) for an invalid message; any other exception is logged and ignored.
        """
        if self._running:
            raise RuntimeError("register channels before starting the switch")
        if not 1 <= channel_id <= 255:
            raise ValueError("channel ids are 1..255 (0 is the control channel)")
        if channel_id in self._channels:
            raise ValueError(f"channel {channel_id} is already registered")
        if not 0 < max_message_size < self.config.max_message_size:
            raise ValueError(f"max_message_size must be in 1..{self.config.max_message_size - 1}")
        self._channels[channel_id] = Channel(channel_id, handler, max_message_size)

    def add_peer_listener(
        self, on_added: PeerListener | None = None, on_removed: PeerListener | None = None
    ) -> None:
        """Call ``on_added(peer)`` when a peer starts and ``on_removed(peer)`` when it stops."""
        if on_added is not None:
            self._added.append(on_added)
        if on_removed is not None:
            self._removed.append(on_removed)

    @property
    def node_info(self) -> NodeInfo:
        listen = self.config.external_addr or (self._listen.hostport if self._listen else "")
        return NodeInfo(
            node_id=self.node_id,
            listen_addr=listen,
            chain_id=self.chain_id,
            genesis_hash=self.genesis_hash,
            moniker=self.moniker,
            channels=tuple(sorted(self._channels)),
            protocol_version=P2P_PROTOCOL_VERSION,
            version=self.version,
        )

    @property
    def listen_address(self) -> NetAddress:
        """The bound address with our node id (``id@host:port``), after :meth:`start`."""
        if self._listen is None:
            raise RuntimeError("the switch is not listening")
        return NetAddress(self._listen.host, self._listen.port, self.node_id)

    # -- start / stop ------------------------------------------------------------------------

    async def start(self, *, listen: bool = True) -> None:
        """Listen (port 0 picks a free port) and start dialing persistent peers and seeds."""
        if self._running:
            raise RuntimeError("switch already started")
        self._running = True
        if listen:
            addr = NetAddress.parse(self.config.listen_addr)
            self._server = await asyncio.start_server(self._on_accept, addr.host, addr.port)
            sock = self._server.sockets[0].getsockname()
            self._listen = NetAddress(addr.host, int(sock[1]))
            log.info("p2p listening on %s (node id %s)", self._listen, self.node_id)
        for entry in self.config.persistent_peers:
            self._spawn(self._persistent_loop(NetAddress.parse(entry, require_id=True)))
        for entry in self.config.seeds:
            self._spawn(self._seed_loop(NetAddress.parse(entry, require_id=True)))

    async def stop(self) -> None:
        """Stop listening and dialing, disconnect every peer, and wait for the tasks to end."""
        if not self._running:
            return
        self._running = False
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        peers = list(self._peers.values())
        for peer in peers:
            peer.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(peer.join() for peer in peers), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def add_persistent_peer(self, address: str | NetAddress) -> None:
        """Dial ``id@host:port`` now and keep redialing it whenever it drops."""
        addr = address if isinstance(address, NetAddress) else NetAddress.parse(address, True)
        if not addr.node_id:
            raise ValueError("a persistent peer needs a node id (id@host:port)")
        self.config.persistent_peers.append(str(addr))
        self._persistent_ids.add(addr.node_id)
        if self._running:
            self._spawn(self._persistent_loop(addr))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- peers -------------------------------------------------------------------------------

    @property
    def peers(self) -> dict[str, Peer]:
        """Connected peers by node id (a copy)."""
        return dict(self._peers)

    def _count(self, *, outbound: bool) -> int:
        return sum(1 for p in self._peers.values() if p.outbound == outbound and not p.persistent)

    def _is_persistent_id(self, node_id: str) -> bool:
        return node_id in self._persistent_ids

    # -- sending -----------------------------------------------------------------------------

    def send(self, peer: Peer | str, channel_id: int, payload: bytes) -> bool:
        """Queue ``payload`` for ``peer`` on ``channel_id``.

        Returns False when the peer is gone, does not serve the channel, or its send queue is
        full (the message is dropped; see the send queue policy in :mod:`.peers`).
        """
        target = self._peers.get(peer) if isinstance(peer, str) else peer
        channel = self._channel(channel_id, payload)
        if target is None or channel_id not in target.channels:
            return False
        return target.try_send(bytes([channel.channel_id]) + payload)

    def broadcast(self, channel_id: int, payload: bytes) -> int:
        """Queue ``payload`` for every peer serving ``channel_id``; returns how many took it."""
        self._channel(channel_id, payload)
        message = bytes([channel_id]) + payload
        return sum(
            peer.try_send(message)
            for peer in list(self._peers.values())
            if channel_id in peer.channels
        )

    def _channel(self, channel_id: int, payload: bytes) -> Channel:
        channel = self._channels.get(channel_id)
        if channel is None:
            raise ValueError(f"channel {channel_id} is not registered")
        if len(payload) > channel.max_message_size:
            raise ValueError(
                f"payload of {len(payload)} bytes > channel {channel_id} limit "
                f"{channel.max_message_size}"
            )
        return channel

    # -- bans --------------------------------------------------------------------------------

    def ban(self, peer: Peer | str, reason: str, seconds: float | None = None) -> None:
        """Disconnect ``peer`` (a Peer or node id) and refuse its node id and IP for a while."""
        seconds = self.config.ban_seconds if seconds is None else seconds
        target = self._peers.get(peer) if isinstance(peer, str) else peer
        node_id = peer if isinstance(peer, str) else peer.node_id
        ip = target.ip if target is not None else ""
        log.warning("banning peer %s (%s) for %ss: %s", node_id, ip, seconds, reason)
        self.bans.ban(node_id=node_id, ip=ip, seconds=seconds, reason=reason)
        if target is not None:
            # PeerRefused (not a misbehavior error) so that the ban above keeps its duration.
            target.stop(PeerRefused(f"banned: {reason}"))

    def is_banned(self, *, node_id: str = "", ip: str = "") -> bool:
        return self.bans.is_banned(node_id=node_id, ip=ip)

    def _ban_for(self, exc: BaseException, *, node_id: str, ip: str) -> None:
        if isinstance(exc, P2PError) and exc.misbehavior:
            log.warning("banning %s (%s): %s: %s", node_id or "?", ip, type(exc).__name__, exc)
            self.bans.ban(
                node_id=node_id,
                ip=ip,
                seconds=self.config.ban_seconds,
                reason=f"{type(exc).__name__}: {exc}",
            )

    # -- inbound -----------------------------------------------------------------------------

    async def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("", 0)
        ip = str(peername[0])
        if not self._running or self.bans.is_banned(ip=ip):
            writer.transport.abort()
            return
        # Inbound slots are checked before any crypto work; persistent peers are let through
        # the cap after the handshake (see _admit), so leave some room for them here.
        if self._count(outbound=False) + self._pending_inbound >= self.config.max_inbound + len(
            self.config.persistent_peers
        ):
            writer.transport.abort()
            return
        self._pending_inbound += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            peer = await self._upgrade(reader, writer, outbound=False, expected=None)
        except (P2PError, OSError) as exc:
            log.debug("inbound connection from %s refused: %s", ip, exc)
            return
        finally:
            self._pending_inbound -= 1
            if task is not None:
                self._tasks.discard(task)
        self._admit_or_close(peer)

    # -- outbound ----------------------------------------------------------------------------

    async def dial(self, address: str | NetAddress, *, persistent: bool = False) -> Peer:
        """Connect to ``[id@]host:port`` and add the peer; raises on any failure.

        Raises
        ------
        PeerRefused
            Banned id, already connected, dialing in progress, or no outbound slot.
        P2PError, OSError
            The TCP connection or the handshake failed (see :class:`SecretConnection`).
        """
        addr = address if isinstance(address, NetAddress) else NetAddress.parse(address)
        if addr.node_id:
            if addr.node_id == self.node_id:
                raise PeerRefused("refusing to dial ourselves")
            if self.bans.is_banned(node_id=addr.node_id):
                raise PeerRefused(f"{addr.node_id} is banned")
            if addr.node_id in self._peers:
                raise PeerRefused(f"already connected to {addr.node_id}")
        if not persistent and self._count(outbound=True) >= self.config.max_outbound:
            raise PeerRefused("no free outbound slot")
        key = str(addr)
        if key in self._dialing:
            raise PeerRefused(f"already dialing {key}")
        self._dialing.add(key)
        try:
            try:
                async with asyncio.timeout(self.config.dial_timeout):
                    reader, writer = await asyncio.open_connection(addr.host, addr.port)
            except TimeoutError as exc:
                raise HandshakeTimeout(f"TCP connect to {addr.hostport} timed out") from exc
            peer = await self._upgrade(reader, writer, outbound=True, expected=addr.node_id)
        finally:
            self._dialing.discard(key)
        peer.persistent = persistent or self._is_persistent_id(peer.node_id)
        if not self._admit_or_close(peer):
            raise PeerRefused(f"peer {peer.node_id} refused: {peer.error}")
        return peer

    def _backoff(self, attempt: int) -> float:
        delay = min(self.config.dial_backoff_base * 2**attempt, self.config.dial_backoff_max)
        return delay * (0.5 + 0.5 * _unit_random())

    async def _persistent_loop(self, addr: NetAddress) -> None:
        attempt = 0
        while self._running:
            peer = self._peers.get(addr.node_id)
            if peer is not None:
                await peer.wait_stopped()
                lasted = time.monotonic() - peer.connected_at
                attempt = 0 if lasted >= STABLE_CONNECTION_SECONDS else attempt + 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            banned_for = self.bans.id_ban_remaining(addr.node_id)
            if banned_for > 0:
                await asyncio.sleep(banned_for)
                continue
            try:
                await self.dial(addr, persistent=True)
            except (P2PError, OSError) as exc:
                log.debug("dial persistent peer %s failed: %s", addr, exc)
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1

    async def _seed_loop(self, addr: NetAddress) -> None:
        attempt = 0
        while self._running:
            if addr.node_id in self._peers:
                return
            try:
                await self.dial(addr)
                return
            except (P2PError, OSError) as exc:
                log.debug("dial seed %s failed: %s", addr, exc)
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1

    # -- handshake and admission -------------------------------------------------------------

    async def _upgrade(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        outbound: bool,
        expected: str | None,
    ) -> Peer:
        peername = writer.get_extra_info("peername") or ("", 0)
        ip = str(peername[0])
        conn: SecretConnection | None = None
        try:
            conn = await SecretConnection.handshake(
                reader,
                writer,
                self.node_key,
                timeout=self.config.handshake_timeout,
                max_message_size=self.config.max_message_size,
            )
            if expected and conn.remote_node_id != expected:
                conn.abort()
                raise NodeIdMismatch(f"dialed {expected} but reached {conn.remote_node_id}")
            info = await exchange_node_info(
                conn, self.node_info, timeout=self.config.handshake_timeout
            )
        except (P2PError, OSError) as exc:
            writer.transport.abort()
            authenticated = conn.remote_node_id if conn is not None else ""
            # A dialed address with the wrong id is a stale address book entry, not an attack.
            if not (expected and isinstance(exc, NodeIdMismatch) and authenticated != ""):
                self._ban_for(exc, node_id=authenticated, ip=ip)
            raise
        except BaseException:  # cancelled (switch stopping): do not leak the socket
            writer.transport.abort()
            raise
        persistent = self._is_persistent_id(info.node_id)
        return Peer(conn, info, outbound=outbound, persistent=persistent, config=self.config)

    def _admit_or_close(self, peer: Peer) -> bool:
        """Add ``peer`` to the set, or stop it with a PeerRefused error. True when added."""
        try:
            self._admit(peer)
        except PeerRefused as exc:
            log.debug("peer %s refused: %s", peer, exc)
            peer.error = exc
            peer.conn.abort()
            return False
        peer.start(self._dispatch, self._limit_for, self._on_peer_stopped)
        for listener in self._added:
            _call_listener(listener, peer)
        log.info("peer %s added (%s)", peer.node_id, peer.info.moniker)
        return True

    def _admit(self, peer: Peer) -> None:
        if not self._running:
            raise PeerRefused("switch is stopping")
        if self.bans.is_banned(node_id=peer.node_id, ip=peer.ip):
            raise PeerRefused(f"banned: {self.bans.reason(node_id=peer.node_id, ip=peer.ip)}")
        existing = self._peers.get(peer.node_id)
        if existing is not None:
            if not self._prefer_new(existing, peer):
                raise PeerRefused("duplicate connection")
            existing.stop(PeerRefused("replaced by a duplicate connection"))
        elif not peer.persistent:
            limit = self.config.max_outbound if peer.outbound else self.config.max_inbound
            if self._count(outbound=peer.outbound) >= limit:
                raise PeerRefused("too many peers")
        self._peers[peer.node_id] = peer

    def _prefer_new(self, existing: Peer, new: Peer) -> bool:
        """Both ends keep the connection dialed by the smaller node id."""
        if existing.outbound == new.outbound:
            return False
        winner_is_outbound = self.node_id < new.node_id
        return new.outbound == winner_is_outbound

    def _on_peer_stopped(self, peer: Peer, error: BaseException | None) -> None:
        if error is not None:
            self._ban_for(error, node_id=peer.node_id, ip=peer.ip)
        if self._peers.get(peer.node_id) is peer:
            del self._peers[peer.node_id]
            log.info("peer %s removed: %s", peer.node_id, error or "stopped")
            for listener in self._removed:
                _call_listener(listener, peer)

    # -- receiving ---------------------------------------------------------------------------

    def _limit_for(self, head: bytes) -> int:
        if not head:
            raise FrameError("empty message (no channel id)")
        if head[0] == CONTROL_CHANNEL:
            return CONTROL_MESSAGE_SIZE
        channel = self._channels.get(head[0])
        if channel is None:
            raise UnknownChannel(f"message on unknown channel {head[0]}")
        return channel.max_message_size + 1

    async def _dispatch(self, peer: Peer, channel_id: int, payload: bytes) -> None:
        channel = self._channels[channel_id]
        try:
            await channel.handler(peer, payload)
        except PeerMisbehavior as exc:
            self.ban(peer, str(exc))
        except Exception:
            log.exception("channel %d handler failed on a message from %s", channel_id, peer)


def _call_listener(listener: PeerListener, peer: Peer) -> None:
    try:
        listener(peer)
    except Exception:
        log.exception("peer listener %r failed for %s", listener, peer)


def parse_addresses(entries: Iterable[str]) -> list[NetAddress]:
    """Parse ``id@host:port`` entries (config lists); ValueError on the first bad one."""
    return [NetAddress.parse(entry, require_id=True) for entry in entries]
