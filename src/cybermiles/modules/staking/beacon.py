"""The election's random beacon.

Placeholder until the BFT network supplies its random beacon:
``keccak256(b"cybermiles/beacon" || parent_hash)``. It is deterministic and biasable by a
proposer that grinds block contents; replacing it is a change to this one function.
"""

from __future__ import annotations

from cybermiles.crypto.keccak import keccak256

BEACON_DOMAIN = b"cybermiles/beacon"


def beacon_for(parent_hash: bytes) -> bytes:
    """The beacon of the block whose parent hash is ``parent_hash``."""
    return keccak256(BEACON_DOMAIN + parent_hash)
