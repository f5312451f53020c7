"""Consensus timeouts: how long a step waits, growing linearly with the round.

``timeoutX(r) = initTimeoutX + r * timeoutDelta`` (Algorithm 1; the round counter restarts at 0
at each height, so the timeouts reset too). Linear growth is what gives liveness after GST: some
round's timeouts eventually exceed the real message delay.

The defaults are CometBFT's ``DefaultConsensusConfig``; ``FAST`` is its test profile.
All values are integer milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import Step


@dataclass(frozen=True, slots=True)
class TimeoutConfig:
    propose_ms: int = 3000
    propose_delta_ms: int = 500
    prevote_ms: int = 1000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1000
    precommit_delta_ms: int = 500
    # Wait after a decision before starting the next height (to collect late precommits).
    # The state machine never schedules it: the reactor waits this long before ``StartHeight``.
    commit_ms: int = 1000

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")

    def propose(self, round: int) -> int:
        """Duration of ``timeoutPropose(round)`` in milliseconds."""
        return self.propose_ms + round * self.propose_delta_ms

    def prevote(self, round: int) -> int:
        """Duration of ``timeoutPrevote(round)`` in milliseconds."""
        return self.prevote_ms + round * self.prevote_delta_ms

    def precommit(self, round: int) -> int:
        """Duration of ``timeoutPrecommit(round)`` in milliseconds."""
        return self.precommit_ms + round * self.precommit_delta_ms

    def for_step(self, step: Step, round: int) -> int:
        """The timeout that guards ``step`` in ``round``."""
        if step == Step.PROPOSE:
            return self.propose(round)
        if step == Step.PREVOTE:
            return self.prevote(round)
        return self.precommit(round)


DEFAULT = TimeoutConfig()

# CometBFT's test configuration (``ResetTestRoot``): short timeouts for unit tests and devnets.
FAST = TimeoutConfig(
    propose_ms=40,
    propose_delta_ms=1,
    prevote_ms=10,
    prevote_delta_ms=1,
    precommit_ms=10,
    precommit_delta_ms=1,
    commit_ms=10,
)
