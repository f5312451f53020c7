"""The staking module's stored records, RLP-encoded in the module's storage.

* ``Candidate``: one per declared candidate, keyed by its owner address. ``shares`` is the sum
  of its delegations' shares; ``self_stake`` the locked part of the owner's own delegation.
* ``Delegation``: one per (candidate, delegator) with shares > 0. Its shares are
  ``delegate_amount + award_amount - withdraw_amount - slash_amount``.
* ``Unbonding``: stake on its way back to a delegator, paid at the end of ``mature_height``.
"""

from __future__ import annotations

import rlp
from rlp.sedes import Binary, big_endian_int, boolean, text

address = Binary.fixed_length(20)
hash32 = Binary.fixed_length(32)

DESCRIPTION_FIELDS = ("name", "website", "location", "email", "profile")


class Candidate(rlp.Serializable):
    """A candidate (see the module docstring); ``active`` means it takes part in elections."""

    fields = (
        ("owner", address),
        ("pub_key", hash32),
        ("max_amount", big_endian_int),
        ("comp_rate", big_endian_int),
        ("shares", big_endian_int),
        ("self_stake", big_endian_int),
        ("name", text),
        ("website", text),
        ("location", text),
        ("email", text),
        ("profile", text),
        ("verified", boolean),
        ("active", boolean),
        ("jailed_until", big_endian_int),
        ("created_at", big_endian_int),
        ("missed_blocks", big_endian_int),
    )

    @property
    def description(self) -> tuple[str, str, str, str, str]:
        return (self.name, self.website, self.location, self.email, self.profile)


class Delegation(rlp.Serializable):
    """A delegator's stake on one candidate; amounts are cumulative since it was created."""

    fields = (
        ("delegate_amount", big_endian_int),
        ("award_amount", big_endian_int),
        ("withdraw_amount", big_endian_int),
        ("slash_amount", big_endian_int),
        ("comp_rate", big_endian_int),
        ("created_at", big_endian_int),
    )

    @property
    def shares(self) -> int:
        """``s = delegate_amount + award_amount - withdraw_amount - slash_amount``."""
        return self.delegate_amount + self.award_amount - self.withdraw_amount - self.slash_amount


class Unbonding(rlp.Serializable):
    """``amount`` returns from ``candidate`` to ``delegator`` at the end of ``mature_height``."""

    fields = (
        ("delegator", address),
        ("candidate", address),
        ("amount", big_endian_int),
        ("mature_height", big_endian_int),
    )
