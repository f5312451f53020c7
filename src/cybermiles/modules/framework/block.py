"""What the end of a block tells the modules: height, fees, who signed, evidence, beacon."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DoubleSign:
    """Consensus evidence: ``candidate`` (its owner address) signed two blocks at ``height``."""

    candidate: bytes
    height: int


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """The block whose end the modules process (after all its transactions)."""

    number: int
    timestamp: int
    parent_hash: bytes
    fees: int  # what the block's transactions paid to the coinbase, the staking module
    signers: frozenset[bytes] | None = (
        None  # candidates whose signature the commit holds; None: all
    )
    evidence: tuple[DoubleSign, ...] = ()
    beacon: bytes = b""  # the block's random beacon (its mixHash); b"": not supplied
