"""net_* methods. A node that builds its chain alone (devnet) has no peers."""

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
    """Connected p2p peers (0 without consensus)."""
    return hex(node.consensus.peer_count() if node.consensus is not None else 0)
