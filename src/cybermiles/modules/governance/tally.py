"""Counting votes: pure functions of a staking ``PowerTable`` and the votes cast.

Rules (``docs/staking.md``, "Governance"):

* each delegation's voting power goes to its delegator's answer if the delegator voted, else to
  its candidate's answer if the candidate voted, else to no one;
* early pass, at the end of any block: ``yes × 3 ≥ total × 2``;
* at the end of the voting period: with a quorum (``cast × 3 ≥ total``) the proposal passes when
  ``yes > 0`` and ``yes × 3 ≥ (yes + no) × 2`` and is rejected otherwise; without a quorum it
  expires.

``total`` is all voting power (the election's). With no power at all nothing passes early and
no quorum is reached (a quorum needs some power cast), so such proposals expire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from cybermiles.modules.governance.records import Answer, Status, Tally


class PowerView(Protocol):
    """What the tally needs of ``cybermiles.modules.staking.power.PowerTable``."""

    @property
    def delegations(self) -> Mapping[bytes, Mapping[bytes, int]]: ...

    @property
    def total(self) -> int: ...


def tally(table: PowerView, votes: Mapping[bytes, int]) -> Tally:
    """Power behind each answer; ``votes`` maps voter address -> answer (0 yes, 1 no, 2 abstain)."""
    counts = [0, 0, 0]
    for candidate, delegations in table.delegations.items():
        candidate_answer = votes.get(candidate)
        for delegator, power in delegations.items():
            answer = votes.get(delegator, candidate_answer)
            if answer is not None and power > 0:
                counts[answer] += power
    return Tally(counts[Answer.YES], counts[Answer.NO], counts[Answer.ABSTAIN])


def passes_early(result: Tally, total: int) -> bool:
    """``yes × 3 ≥ total × 2``, with some power in existence."""
    return total > 0 and result.yes * 3 >= total * 2


def has_quorum(result: Tally, total: int) -> bool:
    """``(yes + no + abstain) × 3 ≥ total``, with some power cast."""
    return result.cast > 0 and result.cast * 3 >= total


def approves(result: Tally) -> bool:
    """``yes × 3 ≥ (yes + no) × 2`` and ``yes > 0``."""
    return result.yes > 0 and result.yes * 3 >= (result.yes + result.no) * 2


def decide(result: Tally, total: int, *, voting_ended: bool) -> Status:
    """The status the tally gives: ``VOTING`` while undecided."""
    if passes_early(result, total):
        return Status.PASSED
    if not voting_ended:
        return Status.VOTING
    if not has_quorum(result, total):
        return Status.EXPIRED
    return Status.PASSED if approves(result) else Status.REJECTED
