"""Vote tallies for one round (``VoteSet``) and one height (``HeightVoteSet``), and evidence.

A :class:`VoteSet` holds the votes of one ``(height, round, type)``. :meth:`VoteSet.add_vote`
checks a vote before counting it (right height/round/type, a member of the validator set, a
valid signature on the chain id) and then:

* the first vote of a validator is counted (:attr:`AddVoteResult.ADDED`);
* the same vote again is ignored (:attr:`AddVoteResult.DUPLICATE`);
* a *different* vote of the same validator (another block hash, or nil vs a block) is not
  counted; :meth:`add_vote` returns a :class:`DuplicateVoteEvidence` of the two votes, for the
  evidence pool (CometBFT ``ErrVoteConflictingVotes``).

Thresholds are strict fractions of the total power, in integers: "+2/3" is
``3 * power > 2 * total`` and "+1/3" is ``3 * power > total`` (the same as CometBFT's
``total*2/3 + 1`` quorum).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

import rlp

from cybermiles.consensus.commit import Commit
from cybermiles.consensus.proposer import ValidatorSet
from cybermiles.consensus.signing import encode_vote, verify_vote
from cybermiles.consensus.types import Vote, VoteType
from cybermiles.crypto.keccak import keccak256

__all__ = [
    "MISSING",
    "AddVoteResult",
    "DuplicateVoteEvidence",
    "HeightVoteSet",
    "InvalidEvidence",
    "InvalidVote",
    "Missing",
    "VoteSet",
]


class InvalidVote(ValueError):
    """A vote that can never be counted here: wrong height/round/type, unknown validator or bad
    signature. (A peer sending one is misbehaving; it is not evidence against a validator.)"""


class InvalidEvidence(ValueError):
    """Duplicate-vote evidence that does not prove an equivocation."""


class Missing(enum.Enum):
    """Type of :data:`MISSING`."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


#: "No +2/3 majority" (distinct from ``None``, which is a +2/3 majority for nil).
MISSING: Final = Missing.MISSING


class AddVoteResult(enum.Enum):
    """What :meth:`VoteSet.add_vote` did with a valid, non-conflicting vote."""

    ADDED = "added"  # counted now
    DUPLICATE = "duplicate"  # the identical vote was already counted


def _hash_key(block_hash: bytes | None) -> bytes:
    return block_hash or b""


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence:
    """Two conflicting votes of one validator at one ``(height, round, type)``.

    Canonical order: ``vote_a`` has the lower block hash (nil, as ``b""``, sorts first), so the
    same equivocation always gives the same evidence and the same :meth:`hash`.
    """

    vote_a: Vote
    vote_b: Vote

    @classmethod
    def from_votes(cls, one: Vote, other: Vote) -> DuplicateVoteEvidence:
        """The evidence of ``one`` and ``other`` in canonical order."""
        if _hash_key(one.block_hash) <= _hash_key(other.block_hash):
            return cls(one, other)
        return cls(other, one)

    @property
    def validator(self) -> bytes:
        return self.vote_a.validator

    @property
    def height(self) -> int:
        return self.vote_a.height

    def encode(self) -> bytes:
        """RLP ``[vote_a, vote_b]``, each as :func:`~cybermiles.consensus.signing.encode_vote`."""
        return rlp.encode([encode_vote(self.vote_a), encode_vote(self.vote_b)])

    def hash(self) -> bytes:
        """keccak256 of :meth:`encode` (committed evidence is deduplicated by it)."""
        return keccak256(self.encode())

    def verify(self, chain_id: int, validators: ValidatorSet) -> None:
        """Check that the two votes prove an equivocation by a member of ``validators`` (the
        set of the votes' height), as CometBFT ``DuplicateVoteEvidence`` verification does.

        Raises
        ------
        InvalidEvidence
            Different validators, heights, rounds or types; identical block hashes; not in
            canonical order; signer not in the set; or an invalid signature.
        """
        a, b = self.vote_a, self.vote_b
        if a.validator != b.validator:
            raise InvalidEvidence("votes are from different validators")
        if (a.height, a.round, a.type) != (b.height, b.round, b.type):
            raise InvalidEvidence("votes are for different height/round/type")
        if _hash_key(a.block_hash) == _hash_key(b.block_hash):
            raise InvalidEvidence("votes are for the same block: no equivocation")
        if _hash_key(a.block_hash) > _hash_key(b.block_hash):
            raise InvalidEvidence("votes are not in canonical order (vote_a must sort first)")
        member = validators.get(a.validator)
        if member is None:
            raise InvalidEvidence(f"{a.validator.hex()} was not a validator at height {a.height}")
        for name, vote in (("vote_a", a), ("vote_b", b)):
            if not verify_vote(member.pub_key, chain_id, vote):
                raise InvalidEvidence(f"invalid signature on {name}")


class VoteSet:
    """The votes of one ``(height, round, type)`` and their tallies."""

    __slots__ = (
        "_by_block",
        "_maj23",
        "_sum",
        "_votes",
        "chain_id",
        "height",
        "round",
        "type",
        "validators",
    )

    def __init__(
        self, chain_id: int, height: int, round: int, type: VoteType, validators: ValidatorSet
    ) -> None:
        self.chain_id = chain_id
        self.height = height
        self.round = round
        self.type = VoteType(type)
        self.validators = validators
        self._votes: dict[bytes, Vote] = {}  # validator -> its counted vote
        self._by_block: dict[bytes | None, int] = {}  # block hash (None = nil) -> power
        self._sum = 0
        self._maj23: bytes | Missing | None = MISSING

    def add_vote(self, vote: Vote) -> AddVoteResult | DuplicateVoteEvidence:
        """Verify and count ``vote``.

        Returns
        -------
        AddVoteResult.ADDED
            The vote was counted.
        AddVoteResult.DUPLICATE
            The identical vote was counted before; nothing changed.
        DuplicateVoteEvidence
            The validator already voted differently here; the new vote was *not* counted.

        Raises
        ------
        InvalidVote
            Wrong height, round or type; signer not a validator; invalid signature.
        """
        if (vote.height, vote.round, vote.type) != (self.height, self.round, self.type):
            raise InvalidVote(
                f"vote for {vote.height}/{vote.round}/{vote.type!r} added to the set of "
                f"{self.height}/{self.round}/{self.type!r}"
            )
        member = self.validators.get(vote.validator)
        if member is None:
            raise InvalidVote(f"{vote.validator.hex()} is not a validator at {self.height}")
        existing = self._votes.get(vote.validator)
        if existing is not None and existing == vote:
            return AddVoteResult.DUPLICATE
        if not verify_vote(member.pub_key, self.chain_id, vote):
            raise InvalidVote(f"invalid signature on the vote of {vote.validator.hex()}")
        if existing is not None:
            if _hash_key(existing.block_hash) == _hash_key(vote.block_hash):
                # Same vote, another valid signature encoding: nothing new to count.
                return AddVoteResult.DUPLICATE
            return DuplicateVoteEvidence.from_votes(existing, vote)
        self._votes[vote.validator] = vote
        self._sum += member.power
        power = self._by_block.get(vote.block_hash, 0) + member.power
        self._by_block[vote.block_hash] = power
        if self._maj23 is MISSING and 3 * power > 2 * self.validators.total_power:
            self._maj23 = vote.block_hash
        return AddVoteResult.ADDED

    # --- queries ----------------------------------------------------------------------------

    def get(self, validator: bytes) -> Vote | None:
        """The counted vote of ``validator``, or None."""
        return self._votes.get(validator)

    def has_vote(self, validator: bytes) -> bool:
        return validator in self._votes

    def votes(self) -> tuple[Vote, ...]:
        """All counted votes, sorted by validator address."""
        return tuple(self._votes[a] for a in sorted(self._votes))

    def __len__(self) -> int:
        return len(self._votes)

    @property
    def sum(self) -> int:
        """Power of all counted votes (any block or nil)."""
        return self._sum

    def power_for(self, block_hash: bytes | None) -> int:
        """Power of the votes for ``block_hash`` (None: for nil)."""
        return self._by_block.get(block_hash, 0)

    def two_thirds_majority(self) -> bytes | Missing | None:
        """The block hash with +2/3 of the power, ``None`` if +2/3 voted nil, else
        :data:`MISSING`. Once reached it never changes (conflicting votes are not counted)."""
        return self._maj23

    def has_two_thirds_majority(self) -> bool:
        """Whether some block, or nil, has +2/3."""
        return self._maj23 is not MISSING

    def has_two_thirds_any(self) -> bool:
        """Whether +2/3 of the power voted, for anything."""
        return 3 * self._sum > 2 * self.validators.total_power

    def has_one_third_any(self) -> bool:
        """Whether +1/3 of the power voted, for anything (the round-skip trigger)."""
        return 3 * self._sum > self.validators.total_power

    def has_all(self) -> bool:
        """Whether every validator voted."""
        return self._sum == self.validators.total_power

    def make_commit(self) -> Commit:
        """The commit of a precommit set with a +2/3 majority for a block.

        Raises
        ------
        ValueError
            Not a precommit set, or no +2/3 majority for a block.
        """
        if self.type != VoteType.PRECOMMIT:
            raise ValueError("only a precommit set can make a commit")
        block_hash = self._maj23
        if block_hash is MISSING or block_hash is None:
            raise ValueError("no +2/3 precommits for a block")
        signatures = tuple(
            (v.validator, v.signature) for v in self.votes() if v.block_hash == block_hash
        )
        return Commit(self.height, self.round, block_hash, signatures)


class HeightVoteSet:
    """The prevote and precommit sets of every round of one height (created on demand).

    Limiting how many future rounds a peer may open is the reactor's job.
    """

    __slots__ = ("_sets", "chain_id", "height", "validators")

    def __init__(self, chain_id: int, height: int, validators: ValidatorSet) -> None:
        self.chain_id = chain_id
        self.height = height
        self.validators = validators
        self._sets: dict[tuple[int, VoteType], VoteSet] = {}

    def _get_or_create(self, round: int, type: VoteType) -> VoteSet:
        key = (round, VoteType(type))
        vs = self._sets.get(key)
        if vs is None:
            vs = VoteSet(self.chain_id, self.height, round, key[1], self.validators)
            self._sets[key] = vs
        return vs

    def add_vote(self, vote: Vote) -> AddVoteResult | DuplicateVoteEvidence:
        """Add ``vote`` to its round's set (see :meth:`VoteSet.add_vote`).

        Raises
        ------
        InvalidVote
            Wrong height, negative round, or as :meth:`VoteSet.add_vote`.
        """
        if vote.height != self.height:
            raise InvalidVote(f"vote for height {vote.height} added at height {self.height}")
        if vote.round < 0:
            raise InvalidVote(f"negative round {vote.round}")
        if vote.type not in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            raise InvalidVote(f"unknown vote type {vote.type!r}")
        return self._get_or_create(vote.round, vote.type).add_vote(vote)

    def prevotes(self, round: int) -> VoteSet:
        """The prevote set of ``round`` (empty if none arrived yet)."""
        return self._get_or_create(round, VoteType.PREVOTE)

    def precommits(self, round: int) -> VoteSet:
        """The precommit set of ``round`` (empty if none arrived yet)."""
        return self._get_or_create(round, VoteType.PRECOMMIT)

    def rounds(self) -> tuple[int, ...]:
        """Rounds that have a vote set, ascending."""
        return tuple(sorted({r for r, _ in self._sets}))

    def pol_info(self) -> tuple[int, bytes] | None:
        """The highest round with +2/3 prevotes for a block, and that block (a proof of lock),
        or None."""
        for round in reversed(self.rounds()):
            prevotes = self._sets.get((round, VoteType.PREVOTE))
            maj = MISSING if prevotes is None else prevotes.two_thirds_majority()
            if isinstance(maj, bytes):
                return round, maj
        return None
