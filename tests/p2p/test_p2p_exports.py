"""The public names of cybermiles.p2p are pinned: changing them is a deliberate API change."""

from __future__ import annotations

import cybermiles.p2p as p2p


def test_public_api_is_pinned() -> None:
    assert sorted(p2p.__all__) == sorted(
        [
            "MAX_FRAME_PAYLOAD", "P2P_PROTOCOL_VERSION", "TX_CHANNEL", "AuthenticationError",
            "BadHello", "BanList", "ConnectionClosed", "DecryptError", "FrameError",
            "HandshakeTimeout", "IncompatiblePeer", "InvalidNodeInfo", "MessageTooLarge",
            "NetAddress", "NodeIdMismatch", "NodeInfo", "NonceExhausted", "P2PConfig", "P2PError",
            "Peer", "PeerMisbehavior", "PeerRefused", "ProtocolError", "SecretConnection",
            "SeenSet", "SelfConnection", "SlowPeer", "Switch", "TxGossip", "UnknownChannel",
            "check_compatible", "exchange_node_info", "load_node_key",
            "load_or_generate_node_key", "node_id", "node_id_of", "save_node_key",
        ]
    )  # fmt: skip
    assert all(hasattr(p2p, name) for name in p2p.__all__)
    assert all(
        getattr(p2p, name).misbehavior is (name in _BANNED)
        for name in p2p.__all__
        if isinstance(getattr(p2p, name), type) and issubclass(getattr(p2p, name), p2p.P2PError)
    )


_BANNED = {
    "AuthenticationError", "BadHello", "DecryptError", "FrameError", "InvalidNodeInfo",
    "MessageTooLarge", "NodeIdMismatch", "PeerMisbehavior", "ProtocolError", "UnknownChannel",
}  # fmt: skip
