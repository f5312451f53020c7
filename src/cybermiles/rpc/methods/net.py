"""net_* methods. A single-validator node has no peers yet (p2p arrives later)."""

from __future__ import annotations

from typing import Any

from cybermiles.rpc.registry import MethodTable

methods = MethodTable()


@methods.method("net_version")
def version(node: Any) -> str:
    """The chain id as a decimal string (geth returns the network id, equal here)."""
    return str(node.chain_id)


@methods.method("net_listening")
def listening(node: Any) -> bool:
    return True


@methods.method("net_peerCount")
def peer_count(node: Any) -> str:
    return "0x0"
