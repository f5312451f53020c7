"""What the consensus state machine asks the reactor to do.

The state machine never signs: ``BroadcastProposal`` and ``BroadcastVote`` carry the message with
an empty signature, and the reactor signs it (through the private validator, which refuses to
double-sign), writes it to the WAL synchronously and only then sends it. The state machine has
already counted its own message, so the reactor must not feed it back (if it does, it is ignored
as a duplicate).
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import Proposal, Step, Vote


@dataclass(frozen=True, slots=True)
class BroadcastProposal:
    proposal: Proposal  # unsigned


@dataclass(frozen=True, slots=True)
class BroadcastVote:
    vote: Vote  # unsigned


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Deliver ``TimeoutEvent(height, round, step)`` after ``duration_ms``."""

    height: int
    round: int
    step: Step
    duration_ms: int


@dataclass(frozen=True, slots=True)
class RequestValue:
    """This node proposes at (height, round) and has no valid value: answer with ``ValueEvent``."""

    height: int
    round: int


@dataclass(frozen=True, slots=True)
class Decide:
    """``block_hash`` is decided at ``height``: +2/3 of the power precommitted it in ``round``.

    ``precommits`` (sorted by validator address) are the commit to store beside the block;
    ``proposal`` is the proposal of that round for the block.
    """

    height: int
    round: int
    block_hash: bytes
    proposal: Proposal
    precommits: tuple[Vote, ...]


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence:
    """One validator signed two different votes of one type for one height and round.

    ``vote_a`` is the vote that was counted (received first), ``vote_b`` the conflicting one.
    """

    vote_a: Vote
    vote_b: Vote


Action = (
    BroadcastProposal
    | BroadcastVote
    | ScheduleTimeout
    | RequestValue
    | Decide
    | DuplicateVoteEvidence
)
