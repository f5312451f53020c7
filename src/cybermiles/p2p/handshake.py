"""NodeInfo: what two nodes tell each other right after the secret connection is up.

Wire format: one secret-connection message holding a JSON object (UTF-8, at most
MAX_NODE_INFO_SIZE bytes; we write it with sorted keys and no whitespace)::

    {"channels": [int, ...],          # channel ids we serve, 1..255, unique, at most 64
     "chain_id": int,                 # EIP-155 chain id, 0..2**64-1
     "genesis_hash": "0x" + 64 hex,   # hash of the genesis block
     "listen_addr": "host:port",      # where we accept connections ("" if we do not listen)
     "moniker": str,                  # at most 64 printable characters
     "node_id": 40 hex,               # must equal the id of the authenticated key
     "protocol_version": int,         # P2P_PROTOCOL_VERSION; must be equal on both sides
     "version": str}                  # software version, informational, at most 64 characters

Unknown keys are ignored, so fields can be added without a protocol version bump; a change in
the meaning of a field needs a new ``protocol_version``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson

from .errors import (
    HandshakeTimeout,
    IncompatiblePeer,
    InvalidNodeInfo,
    NodeIdMismatch,
    P2PError,
    SelfConnection,
)
from .keys import is_node_id
from .secret import SecretConnection

P2P_PROTOCOL_VERSION = 1
MAX_NODE_INFO_SIZE = 4096
MAX_MONIKER_LENGTH = 64
MAX_VERSION_LENGTH = 64
MAX_LISTEN_ADDR_LENGTH = 256
MAX_CHANNELS = 64
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The self-description a node sends in the handshake."""

    node_id: str
    listen_addr: str
    chain_id: int
    genesis_hash: bytes
    moniker: str = "node"
    channels: tuple[int, ...] = ()
    protocol_version: int = P2P_PROTOCOL_VERSION
    version: str = ""

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "channels": list(self.channels),
                "chain_id": self.chain_id,
                "genesis_hash": "0x" + self.genesis_hash.hex(),
                "listen_addr": self.listen_addr,
                "moniker": self.moniker,
                "node_id": self.node_id,
                "protocol_version": self.protocol_version,
                "version": self.version,
            },
            option=orjson.OPT_SORT_KEYS,
        )


def _field(data: dict, name: str, kind: type) -> object:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidNodeInfo(f"NodeInfo.{name}: expected {kind.__name__}")
    return value


def _short_text(data: dict, name: str, max_length: int) -> str:
    value = _field(data, name, str)
    assert isinstance(value, str)
    if len(value) > max_length or not value.isprintable():
        raise InvalidNodeInfo(f"NodeInfo.{name}: at most {max_length} printable characters")
    return value


def decode_node_info(data: bytes) -> NodeInfo:
    """Parse and validate a NodeInfo message; InvalidNodeInfo names the bad field."""
    if len(data) > MAX_NODE_INFO_SIZE:
        raise InvalidNodeInfo(f"NodeInfo of {len(data)} bytes > {MAX_NODE_INFO_SIZE}")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidNodeInfo(f"NodeInfo is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidNodeInfo("NodeInfo must be a JSON object")
    node_id = _field(obj, "node_id", str)
    assert isinstance(node_id, str)
    if not is_node_id(node_id):
        raise InvalidNodeInfo("NodeInfo.node_id: expected 40 lowercase hex digits")
    chain_id = _field(obj, "chain_id", int)
    assert isinstance(chain_id, int)
    if not 0 <= chain_id < 2**64:
        raise InvalidNodeInfo("NodeInfo.chain_id: out of range")
    genesis = _field(obj, "genesis_hash", str)
    assert isinstance(genesis, str)
    if len(genesis) != 66 or not genesis.startswith("0x") or not set(genesis[2:]) <= _HEX:
        raise InvalidNodeInfo("NodeInfo.genesis_hash: expected 0x + 64 lowercase hex digits")
    protocol_version = _field(obj, "protocol_version", int)
    assert isinstance(protocol_version, int)
    if not 0 <= protocol_version < 2**32:
        raise InvalidNodeInfo("NodeInfo.protocol_version: out of range")
    channels = _field(obj, "channels", list)
    assert isinstance(channels, list)
    if len(channels) > MAX_CHANNELS or len(set(channels)) != len(channels):
        raise InvalidNodeInfo(f"NodeInfo.channels: at most {MAX_CHANNELS} unique ids")
    for channel in channels:
        if not isinstance(channel, int) or isinstance(channel, bool) or not 1 <= channel <= 255:
            raise InvalidNodeInfo("NodeInfo.channels: ids are integers 1..255")
    return NodeInfo(
        node_id=node_id,
        listen_addr=_short_text(obj, "listen_addr", MAX_LISTEN_ADDR_LENGTH),
        chain_id=chain_id,
        genesis_hash=bytes.fromhex(genesis[2:]),
        moniker=_short_text(obj, "moniker", MAX_MONIKER_LENGTH),
        channels=tuple(channels),
        protocol_version=protocol_version,
        version=_short_text(obj, "version", MAX_VERSION_LENGTH),
    )


def check_compatible(ours: NodeInfo, theirs: NodeInfo, authenticated_id: str) -> None:
    """Refuse a peer that lies about its id, is ourselves, or runs another chain or protocol.

    Raises
    ------
    NodeIdMismatch
        ``theirs.node_id`` is not the id of the key that authenticated the connection.
    SelfConnection
        The peer is this node.
    IncompatiblePeer
        Different chain id, genesis hash or protocol version.
    """
    if theirs.node_id != authenticated_id:
        raise NodeIdMismatch(
            f"peer claims node id {theirs.node_id} but authenticated as {authenticated_id}"
        )
    if theirs.node_id == ours.node_id:
        raise SelfConnection("connected to ourselves")
    if theirs.chain_id != ours.chain_id:
        raise IncompatiblePeer(f"peer is on chain {theirs.chain_id}, we are on {ours.chain_id}")
    if theirs.genesis_hash != ours.genesis_hash:
        raise IncompatiblePeer(f"peer has genesis 0x{theirs.genesis_hash.hex()}")
    if theirs.protocol_version != ours.protocol_version:
        raise IncompatiblePeer(
            f"peer speaks p2p protocol {theirs.protocol_version}, we speak {ours.protocol_version}"
        )


async def exchange_node_info(
    conn: SecretConnection, ours: NodeInfo, *, timeout: float = 10.0
) -> NodeInfo:
    """Send our NodeInfo, read and check the peer's. The connection is closed on failure.

    Raises everything :func:`check_compatible` and :func:`decode_node_info` raise, plus
    HandshakeTimeout and the SecretConnection read/write errors.
    """
    try:
        async with asyncio.timeout(timeout):
            await conn.write_message(ours.encode())
            data = await conn.read_message(limit=lambda _head: MAX_NODE_INFO_SIZE)
        theirs = decode_node_info(data)
        check_compatible(ours, theirs, conn.remote_node_id)
    except TimeoutError as exc:
        conn.abort()
        raise HandshakeTimeout(f"NodeInfo exchange took over {timeout}s") from exc
    except P2PError:
        conn.abort()
        raise
    return theirs
