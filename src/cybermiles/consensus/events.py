"""What the consensus state machine consumes.

Every input is one of these frozen values, handed to ``ConsensusState.handle``. Because inputs are
plain values, the reactor can write each one to the WAL before handling it and recovery is a replay
of the same values through the same method.

Messages carry the signatures the reactor already checked: the state machine trusts that a vote
or proposal really comes from the validator it names (it does check that the validator is in the
set and that a proposal comes from the round's proposer).
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import Proposal, Step, Vote


@dataclass(frozen=True, slots=True)
class StartHeight:
    """Start ``height`` at round 0 (once the previous block is applied and ``commit_ms`` passed)."""

    height: int


@dataclass(frozen=True, slots=True)
class ProposalEvent:
    """A proposal received from a peer; ``valid`` is the caller's verdict valid(v) on the block."""

    proposal: Proposal
    valid: bool


@dataclass(frozen=True, slots=True)
class VoteEvent:
    """A prevote or precommit received from a peer."""

    vote: Vote


@dataclass(frozen=True, slots=True)
class TimeoutEvent:
    """A timeout scheduled by ``ScheduleTimeout`` fired; stale ones are ignored."""

    height: int
    round: int
    step: Step


@dataclass(frozen=True, slots=True)
class ValueEvent:
    """The reactor's answer to ``RequestValue``: the hash of a block this node proposes."""

    height: int
    round: int
    block_hash: bytes


Event = StartHeight | ProposalEvent | VoteEvent | TimeoutEvent | ValueEvent
