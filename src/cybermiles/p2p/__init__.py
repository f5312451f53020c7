"""Encrypted, authenticated peer-to-peer transport.

A tour, bottom up:

- :mod:`.keys` — the node's Ed25519 identity (``<home>/config/node_key.json``, mode 0600) and
  node ids (hex of ``sha256(pubkey)[:20]``).
- :mod:`.secret` — :class:`SecretConnection`: X25519 ephemeral key exchange, HKDF-SHA256 keys and
  a transcript-bound challenge, mutual Ed25519 authentication, ChaCha20-Poly1305 frames with
  64-bit counter nonces, length-prefixed messages with a size limit.
- :mod:`.handshake` — :class:`NodeInfo` (JSON): chain id, genesis hash, protocol version, node id;
  :func:`check_compatible` refuses other chains, lying node ids and ourselves.
- :mod:`.peers` — addresses, the ban list, :class:`P2PConfig`, and :class:`Peer` (send queue,
  receive loop, ping/pong keepalive).
- :mod:`.switch` — :class:`Switch`: listens, dials persistent peers and seeds with backoff, peer
  limits, channel routing (1-byte channel ids), broadcast, bans.
- :mod:`.gossip` — :class:`TxGossip`: batched, de-duplicated transaction gossip.
- :mod:`.errors` — the error tree; ``misbehavior`` errors get the remote banned.
"""

from .errors import (
    AuthenticationError,
    BadHello,
    ConnectionClosed,
    DecryptError,
    FrameError,
    HandshakeTimeout,
    IncompatiblePeer,
    InvalidNodeInfo,
    MessageTooLarge,
    NodeIdMismatch,
    NonceExhausted,
    P2PError,
    PeerMisbehavior,
    PeerRefused,
    ProtocolError,
    SelfConnection,
    SlowPeer,
    UnknownChannel,
)
from .gossip import TX_CHANNEL, SeenSet, TxGossip
from .handshake import P2P_PROTOCOL_VERSION, NodeInfo, check_compatible, exchange_node_info
from .keys import load_node_key, load_or_generate_node_key, node_id, node_id_of, save_node_key
from .peers import BanList, NetAddress, P2PConfig, Peer
from .secret import MAX_FRAME_PAYLOAD, SecretConnection
from .switch import Switch

__all__ = [
    "MAX_FRAME_PAYLOAD",
    "P2P_PROTOCOL_VERSION",
    "TX_CHANNEL",
    "AuthenticationError",
    "BadHello",
    "BanList",
    "ConnectionClosed",
    "DecryptError",
    "FrameError",
    "HandshakeTimeout",
    "IncompatiblePeer",
    "InvalidNodeInfo",
    "MessageTooLarge",
    "NetAddress",
    "NodeIdMismatch",
    "NodeInfo",
    "NonceExhausted",
    "P2PConfig",
    "P2PError",
    "Peer",
    "PeerMisbehavior",
    "PeerRefused",
    "ProtocolError",
    "SecretConnection",
    "SeenSet",
    "SelfConnection",
    "SlowPeer",
    "Switch",
    "TxGossip",
    "UnknownChannel",
    "check_compatible",
    "exchange_node_info",
    "load_node_key",
    "load_or_generate_node_key",
    "node_id",
    "node_id_of",
    "save_node_key",
]
