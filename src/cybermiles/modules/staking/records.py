"""The staking module's stored records, RLP-encoded in the module's storage.

* ``Candidate``: one per declared candidate, keyed by its owner address. ``shares`` is the sum
  of its delegations' shares; ``self_stake`` the locked part of the owner's own delegation.
* ``Delegation``: one per (candidate, delegator) with shares > 0. Its shares are
  ``delegate_amount + award_amount - withdraw_amount - slash_amount``.
* ``Unbonding``: stake on its way back to a delegator, paid at the end of ``mature_height``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cybermiles.modules.framework.record import Record

DESCRIPTION_FIELDS = ("name", "website", "location", "email", "profile")


@dataclass(frozen=True, slots=True)
class Candidate(Record):
    """A candidate (see the module docstring); ``active`` means it takes part in elections."""

    owner: bytes  # 20 bytes
    pub_key: bytes  # 32 bytes, Ed25519
    max_amount: int
    comp_rate: int
    shares: int
    self_stake: int
    name: str
    website: str
    location: str
    email: str
    profile: str
    verified: bool
    active: bool
    jailed_until: int
    created_at: int
    missed_blocks: int

    @property
    def description(self) -> tuple[str, str, str, str, str]:
        return (self.name, self.website, self.location, self.email, self.profile)


@dataclass(frozen=True, slots=True)
class Delegation(Record):
    """A delegator's stake on one candidate; amounts are cumulative since it was created."""

    delegate_amount: int
    award_amount: int
    withdraw_amount: int
    slash_amount: int
    comp_rate: int
    created_at: int

    @property
    def shares(self) -> int:
        """``s = delegate_amount + award_amount - withdraw_amount - slash_amount``."""
        return self.delegate_amount + self.award_amount - self.withdraw_amount - self.slash_amount


@dataclass(frozen=True, slots=True)
class Unbonding(Record):
    """``amount`` returns from ``candidate`` to ``delegator`` at the end of ``mature_height``."""

    delegator: bytes  # 20 bytes
    candidate: bytes  # 20 bytes
    amount: int
    mature_height: int
