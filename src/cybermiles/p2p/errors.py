"""Errors of the p2p layer.

Every error says whether it proves the remote misbehaved (``misbehavior``): the switch bans the
remote's node id and IP for those, and only disconnects for the others::

    P2PError                         base class; misbehavior = False
    ├── ConnectionClosed             EOF, reset, or a truncated frame
    ├── HandshakeTimeout             the handshake did not finish in time
    ├── NonceExhausted               2**64 frames sent or received on one key: the connection ends
    ├── SlowPeer                     a write did not drain in time, or no pong came back
    ├── ProtocolError                misbehavior = True: the remote broke the wire protocol
    │   ├── BadHello                 the first bytes are not a valid secret-connection hello
    │   ├── AuthenticationError      bad signature, low-order key, reflected ephemeral key
    │   ├── DecryptError             a frame failed ChaCha20-Poly1305 authentication
    │   ├── FrameError               a frame or message has invalid lengths
    │   │   └── MessageTooLarge      a message is larger than the limit for it
    │   ├── InvalidNodeInfo          NodeInfo does not decode or a field is invalid
    │   ├── NodeIdMismatch           claimed node id != id of the authenticated key
    │   └── UnknownChannel           a message on a channel we do not serve
    ├── IncompatiblePeer             chain id, genesis hash or protocol version differ
    │   └── SelfConnection           we dialed ourselves
    ├── PeerRefused                  banned, duplicate, too many peers, wrong expected id
    └── PeerMisbehavior              misbehavior = True; raised by channel handlers
"""

from __future__ import annotations


class P2PError(Exception):
    """Base of every p2p error."""

    misbehavior = False


class ConnectionClosed(P2PError):
    """The connection ended: EOF, reset, a truncated frame, or closed by us."""


class HandshakeTimeout(P2PError):
    """The secret-connection or NodeInfo handshake did not finish within the timeout."""


class NonceExhausted(P2PError):
    """A direction used all 2**64 nonces; a nonce is never reused, so the connection ends."""


class SlowPeer(P2PError):
    """The peer did not read our data within ``write_timeout`` or did not answer a ping."""


class ProtocolError(P2PError):
    """The remote broke the wire protocol: it is banned."""

    misbehavior = True


class BadHello(ProtocolError):
    """The first bytes received are not a secret-connection hello (magic, version, key)."""


class AuthenticationError(ProtocolError):
    """The remote failed authentication (signature, low-order or reflected key)."""


class DecryptError(ProtocolError):
    """A frame's ciphertext or length failed ChaCha20-Poly1305 authentication."""


class FrameError(ProtocolError):
    """A frame or message has invalid lengths (empty, too long, crossing message bounds)."""


class MessageTooLarge(FrameError):
    """A message announced a length above the limit of the connection or of its channel."""


class InvalidNodeInfo(ProtocolError):
    """The NodeInfo message does not decode, or one of its fields is invalid."""


class NodeIdMismatch(ProtocolError):
    """The node id claimed in NodeInfo (or expected when dialing) is not the authenticated key's."""


class UnknownChannel(ProtocolError):
    """A message arrived on a channel id that no handler serves."""


class IncompatiblePeer(P2PError):
    """The peer runs another chain (chain id, genesis hash) or protocol version."""


class SelfConnection(IncompatiblePeer):
    """The remote is this node (same node id)."""


class PeerRefused(P2PError):
    """The switch refused the peer: banned, duplicate connection, or peer limits reached."""


class PeerMisbehavior(P2PError):
    """Raised by a channel handler when a peer sent an invalid message; the peer is banned."""

    misbehavior = True
