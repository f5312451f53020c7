"""The BFT commit of a block: precommit signatures of more than 2/3 of the voting power.

A :class:`Commit` is stored beside its block. Its :meth:`Commit.hash` (keccak256 of the RLP
encoding) goes into the *next* block's header (``extraData``), which fixes one commit per
block even though many subsets of +2/3 signers exist.

Encoding: RLP ``[height, round, block_hash, [[validator, signature], ...]]`` with the pairs
sorted by validator address, strictly ascending. Only precommits for ``block_hash`` at
``(height, round)`` are included (no nil or absent entries); each signature is over
``signing.vote_sign_bytes(chain_id, Vote(PRECOMMIT, height, round, block_hash, ...))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import rlp
from rlp.sedes import big_endian_int

from cybermiles.consensus.proposer import ValidatorSet
from cybermiles.consensus.signing import verify_vote
from cybermiles.consensus.types import Vote, VoteType
from cybermiles.crypto.keccak import keccak256

__all__ = ["Commit", "InvalidCommit", "MalformedCommit"]

HASH_SIZE = 32


class InvalidCommit(ValueError):
    """A commit that does not prove +2/3 of the power precommitted the block."""


class MalformedCommit(InvalidCommit):
    """Bytes that are not a canonical commit encoding."""


@dataclass(frozen=True, slots=True)
class Commit:
    """Precommit signatures for ``block_hash`` at ``(height, round)``.

    ``signatures`` is normalised to a tuple of ``(validator address, signature)`` sorted by
    address (duplicates are kept so that :meth:`verify` can reject them).
    """

    height: int
    round: int
    block_hash: bytes
    signatures: tuple[tuple[bytes, bytes], ...]

    def __post_init__(self) -> None:
        ordered = tuple(sorted(((bytes(a), bytes(s)) for a, s in self.signatures)))
        object.__setattr__(self, "signatures", ordered)

    # --- encoding ---------------------------------------------------------------------------

    def encode(self) -> bytes:
        """The canonical RLP encoding (see the module docstring)."""
        return rlp.encode(
            [self.height, self.round, self.block_hash, [list(p) for p in self.signatures]]
        )

    @classmethod
    def decode(cls, data: bytes) -> Commit:
        """Inverse of :meth:`encode`; accepts only the canonical form.

        Raises
        ------
        MalformedCommit
            Bad RLP, wrong shapes, a block hash not 32 bytes, or signers not strictly
            ascending.
        """
        try:
            items = rlp.decode(data)
        except rlp.exceptions.DecodingError as e:
            raise MalformedCommit(f"malformed commit RLP: {e}") from e
        if not isinstance(items, list) or len(items) != 4:
            raise MalformedCommit("commit must be an RLP list of 4 items")
        raw_height, raw_round, block_hash, raw_sigs = items
        if not isinstance(raw_sigs, list):
            raise MalformedCommit("commit signatures must be a list")
        if not isinstance(raw_height, bytes) or not isinstance(raw_round, bytes):
            raise MalformedCommit("commit height and round must be RLP strings")
        try:
            height = big_endian_int.deserialize(raw_height)
            round_ = big_endian_int.deserialize(raw_round)
        except (rlp.exceptions.DeserializationError, TypeError) as e:
            raise MalformedCommit(f"bad commit height/round: {e}") from e
        if not isinstance(block_hash, bytes) or len(block_hash) != HASH_SIZE:
            raise MalformedCommit(f"commit block hash must be {HASH_SIZE} bytes")
        pairs = []
        for pair in raw_sigs:
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(isinstance(x, bytes) for x in pair)
            ):
                raise MalformedCommit("each commit signature must be [validator, signature]")
            pairs.append((pair[0], pair[1]))
        for (a, _), (b, _) in pairwise(pairs):
            if a >= b:
                raise MalformedCommit("commit signers must be strictly ascending by address")
        return cls(height, round_, block_hash, tuple(pairs))

    def hash(self) -> bytes:
        """keccak256 of :meth:`encode` (what the next header's ``extraData`` commits to)."""
        return keccak256(self.encode())

    # --- contents ---------------------------------------------------------------------------

    def signers(self) -> frozenset[bytes]:
        """Addresses of the validators whose signatures are in the commit (for downtime
        tracking and rewards; only meaningful after :meth:`verify`)."""
        return frozenset(a for a, _ in self.signatures)

    def votes(self) -> tuple[Vote, ...]:
        """The precommits the signatures stand for, sorted by validator."""
        return tuple(
            Vote(VoteType.PRECOMMIT, self.height, self.round, self.block_hash, a, s)
            for a, s in self.signatures
        )

    # --- verification -----------------------------------------------------------------------

    def verify(
        self,
        chain_id: int,
        validators: ValidatorSet,
        *,
        height: int | None = None,
        block_hash: bytes | None = None,
    ) -> None:
        """Check that more than 2/3 of ``validators``' power signed precommits for
        :attr:`block_hash` at ``(height, round)`` on ``chain_id``. Every signature is checked,
        not just enough of them, so a valid commit has no junk in it.

        Parameters
        ----------
        chain_id
            The chain the signatures must be bound to.
        validators
            The validator set of the commit's height.
        height, block_hash
            If given, the commit must be for this height / block.

        Raises
        ------
        InvalidCommit
            Wrong height or block, a bad shape, duplicate or unknown signers, an invalid
            signature, or not more than 2/3 of the power.
        """
        if height is not None and self.height != height:
            raise InvalidCommit(f"commit is for height {self.height}, expected {height}")
        if block_hash is not None and self.block_hash != block_hash:
            raise InvalidCommit(
                f"commit is for block {self.block_hash.hex()}, expected {block_hash.hex()}"
            )
        if self.height < 1 or self.round < 0:
            raise InvalidCommit(f"bad commit height/round {self.height}/{self.round}")
        if len(self.block_hash) != HASH_SIZE:
            raise InvalidCommit(f"commit block hash must be {HASH_SIZE} bytes")
        if not self.signatures:
            raise InvalidCommit("commit has no signatures")
        signed = 0
        previous = None
        for vote in self.votes():
            if vote.validator == previous:
                raise InvalidCommit(f"duplicate signature by {vote.validator.hex()}")
            previous = vote.validator
            member = validators.get(vote.validator)
            if member is None:
                raise InvalidCommit(
                    f"signer {vote.validator.hex()} is not a validator at height {self.height}"
                )
            if not verify_vote(member.pub_key, chain_id, vote):
                raise InvalidCommit(f"invalid precommit signature by {vote.validator.hex()}")
            signed += member.power
        total = validators.total_power
        if 3 * signed <= 2 * total:
            raise InvalidCommit(
                f"insufficient voting power: got {signed} of {total}, needed more than 2/3"
            )
