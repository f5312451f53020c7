"""The values consensus exchanges: validators, proposals and votes.

A block is identified by its Ethereum header hash (32 bytes). ``None`` as a vote's block hash
is a vote for nil. Validators are identified by their owner address (the staking candidate's
20-byte address) and sign with their Ed25519 consensus key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol


class Step(IntEnum):
    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


@dataclass(frozen=True, slots=True)
class Validator:
    address: bytes  # 20 bytes: the staking candidate
    pub_key: bytes  # 32 bytes: Ed25519
    power: int  # > 0


@dataclass(frozen=True, slots=True)
class Proposal:
    height: int
    round: int
    block_hash: bytes
    pol_round: int  # -1: no proof of lock
    proposer: bytes  # validator address
    signature: bytes = b""


@dataclass(frozen=True, slots=True)
class Vote:
    type: VoteType
    height: int
    round: int
    block_hash: bytes | None  # None: nil
    validator: bytes  # validator address
    signature: bytes = b""


class Validators(Protocol):
    """What the state machine needs of a height's validator set."""

    def power_of(self, address: bytes) -> int:
        """Voting power of ``address`` (0 if not a validator)."""
        ...

    @property
    def total_power(self) -> int: ...

    def proposer(self, round: int) -> bytes:
        """The proposer's address for ``round`` of this height."""
        ...
