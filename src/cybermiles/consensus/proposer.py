"""Validator sets and proposer selection: CometBFT's weighted round robin, bit for bit.

Every validator ``i`` has a voting power ``VP(i)`` and a proposer priority ``A(i)`` (a Go int64).
``P`` is the total power. One *increment* of the priorities (CometBFT
``IncrementProposerPriority``, spec ``spec/consensus/proposer-selection.md``) is::

    diffMax = PRIORITY_WINDOW_SIZE_FACTOR * P
    if max(A) - min(A) > diffMax:                  # rescale
        A(i) = A(i) / ceil((max - min) / diffMax)  # Go int64 '/': truncates toward zero
    A(i) -= floor(sum(A) / n)                      # centre (big.Int Euclidean division)
    repeat times:
        A(i) += VP(i)                              # int64 add, clipped
        prop = argmax A (tie: lower address)
        A(prop) -= P                               # int64 sub, clipped

The porting pitfall: Python's ``//`` floors toward -inf, Go's ``/`` truncates toward zero. The
rescale step uses :func:`_div_trunc`; with ``//`` the priorities (and later the proposers) drift
away from every Go node's.

How the heights chain (what CometBFT's ``state/execution.go`` does):

* genesis: ``ValidatorSet.from_validators(vals)`` is the set of the initial height (already
  incremented once, like ``NewValidatorSet``);
* next height: ``vs.advance()`` (one increment, independent of how many rounds the height took);
* validator updates decided in height ``h`` (CometBFT applies them to the set of ``h + 2``):
  ``set_h2 = set_h1.with_changes(updates).advance()``;
* rounds of one height: ``vs.proposer(r)`` is the proposer after ``r`` increments (in one call)
  of the height's set; the set itself never changes, so every node computes the same proposer
  for ``(h, r)`` whatever sequence of rounds it went through.

A ``ValidatorSet`` is immutable: every operation returns a new set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import pairwise

import rlp

from cybermiles.consensus.types import Validator
from cybermiles.crypto.ed25519 import PUBLIC_KEY_SIZE
from cybermiles.crypto.keccak import keccak256

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_TOTAL_VOTING_POWER",
    "PRIORITY_WINDOW_SIZE_FACTOR",
    "InvalidValidatorSet",
    "ValidatorSet",
]

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
#: Small enough that priorities never clip and ``diff + diffMax - 1`` never overflows.
MAX_TOTAL_VOTING_POWER = INT64_MAX // 8
#: The largest allowed distance between priorities, in multiples of the total power.
PRIORITY_WINDOW_SIZE_FACTOR = 2


class InvalidValidatorSet(ValueError):
    """A validator set or a change set breaks a rule (raised before anything changes)."""


# --- Go int64 arithmetic -------------------------------------------------------------------


def _wrap64(x: int) -> int:
    """``x`` reduced to int64 with two's-complement wrap-around (Go's unchecked arithmetic)."""
    return (x + 2**63) % 2**64 - 2**63


def _add_clip(a: int, b: int) -> int:
    """CometBFT ``safeAddClip``: ``a + b`` clipped to the int64 range."""
    return max(INT64_MIN, min(INT64_MAX, a + b))


def _sub_clip(a: int, b: int) -> int:
    """CometBFT ``safeSubClip``: ``a - b`` clipped to the int64 range."""
    return max(INT64_MIN, min(INT64_MAX, a - b))


def _div_trunc(a: int, b: int) -> int:
    """Go's int64 ``a / b`` (``b > 0``): the quotient truncated toward zero, not floored."""
    q = abs(a) // b
    return q if a >= 0 else -q


# --- the priority algorithm on plain lists (addresses sorted ascending) ----------------------


def _rescale(priorities: list[int], diff_max: int) -> list[int]:
    """CometBFT ``RescalePriorities``: shrink the spread of priorities to at most ``diff_max``."""
    if diff_max <= 0:
        return priorities
    diff = _wrap64(max(priorities) - min(priorities))
    if diff < 0:
        diff = _wrap64(-diff)
    ratio = _wrap64(diff + diff_max - 1) // diff_max  # both positive: floor == truncation
    if diff > diff_max:
        return [_div_trunc(p, ratio) for p in priorities]
    return priorities


def _center(priorities: list[int]) -> list[int]:
    """CometBFT ``shiftByAvgProposerPriority``: subtract the (Euclidean) average."""
    avg = sum(priorities) // len(priorities)  # Euclidean == floor for a positive divisor
    if not INT64_MIN <= avg <= INT64_MAX:
        raise InvalidValidatorSet(f"average priority {avg} does not fit in int64")
    return [_sub_clip(p, avg) for p in priorities]


def _elect_once(powers: tuple[int, ...], priorities: list[int], total: int) -> int:
    """One election: add each power, pick the highest priority (lowest index on a tie), charge it
    the total power. Mutates ``priorities``; returns the index of the proposer."""
    for i, power in enumerate(powers):
        priorities[i] = _add_clip(priorities[i], power)
    best = 0
    for i in range(1, len(priorities)):
        if priorities[i] > priorities[best]:  # strict: a tie keeps the lower address
            best = i
    priorities[best] = _sub_clip(priorities[best], total)
    return best


def _increment(
    powers: tuple[int, ...], priorities: list[int], total: int, times: int
) -> tuple[list[int], int]:
    """CometBFT ``IncrementProposerPriority(times)``: returns (new priorities, proposer index)."""
    if times <= 0:
        raise ValueError(f"times must be positive, got {times}")
    prios = _center(_rescale(list(priorities), PRIORITY_WINDOW_SIZE_FACTOR * total))
    best = 0
    for _ in range(times):
        best = _elect_once(powers, prios, total)
    return prios, best


def _highest(priorities: Iterable[int]) -> int:
    """Index of the highest priority (lowest index on a tie)."""
    best, best_prio = 0, None
    for i, p in enumerate(priorities):
        if best_prio is None or p > best_prio:
            best, best_prio = i, p
    return best


# --- validation ----------------------------------------------------------------------------


def _check_validator(v: Validator, *, allow_zero: bool) -> None:
    if not v.address:
        raise InvalidValidatorSet("validator address is empty")
    if v.power < 0 or (v.power == 0 and not allow_zero):
        raise InvalidValidatorSet(f"voting power of {v.address.hex()} must be positive: {v.power}")
    if v.power > MAX_TOTAL_VOTING_POWER:
        raise InvalidValidatorSet(
            f"voting power of {v.address.hex()} exceeds {MAX_TOTAL_VOTING_POWER}: {v.power}"
        )
    if v.power > 0 and len(v.pub_key) != PUBLIC_KEY_SIZE:
        raise InvalidValidatorSet(
            f"public key of {v.address.hex()} must be {PUBLIC_KEY_SIZE} bytes, got {len(v.pub_key)}"
        )


def _sorted_unique(validators: Iterable[Validator]) -> list[Validator]:
    ordered = sorted(validators, key=lambda v: v.address)
    for a, b in pairwise(ordered):
        if a.address == b.address:
            raise InvalidValidatorSet(f"duplicate validator {a.address.hex()}")
    return ordered


def _new_priority(total_before_removals: int) -> int:
    """Start priority of a joining validator: ``-1.125 * P`` as CometBFT computes it in integers,
    so that leaving and re-joining never resets a (negative) priority upward."""
    return -(total_before_removals + (total_before_removals >> 3))


class ValidatorSet:
    """The validators of one height, with their proposer priorities.

    Invariants: at least one validator; addresses unique and sorted ascending; every power in
    ``1..MAX_TOTAL_VOTING_POWER`` and their sum at most ``MAX_TOTAL_VOTING_POWER``; priorities
    are int64; ``proposer(0)`` is a member. Implements the consensus ``Validators`` protocol.
    """

    __slots__ = ("_by_address", "_priorities", "_proposer", "_proposer_cache", "_total", "_vals")

    def __init__(
        self, validators: Iterable[Validator], priorities: Iterable[int], proposer: bytes
    ) -> None:
        """Rebuild a set exactly as stored (``priorities`` aligned with ``validators``).

        Use :meth:`from_validators` for a new (genesis) set.

        Raises
        ------
        InvalidValidatorSet
            If the set is empty, has duplicates, a bad power or key, priorities of the wrong
            count or outside int64, or ``proposer`` is not a member.
        """
        pairs = list(zip(validators, priorities, strict=True))
        if not pairs:
            raise InvalidValidatorSet("validator set is empty")
        pairs.sort(key=lambda vp: vp[0].address)
        vals = tuple(v for v, _ in pairs)
        _sorted_unique(vals)
        for v in vals:
            _check_validator(v, allow_zero=False)
        prios = tuple(p for _, p in pairs)
        for p in prios:
            if not INT64_MIN <= p <= INT64_MAX:
                raise InvalidValidatorSet(f"priority {p} does not fit in int64")
        total = sum(v.power for v in vals)
        if total > MAX_TOTAL_VOTING_POWER:
            raise InvalidValidatorSet(
                f"total voting power {total} exceeds maximum {MAX_TOTAL_VOTING_POWER}"
            )
        self._vals = vals
        self._priorities = prios
        self._total = total
        self._by_address = {v.address: i for i, v in enumerate(vals)}
        if proposer not in self._by_address:
            raise InvalidValidatorSet(f"proposer {proposer.hex()} is not in the validator set")
        self._proposer = proposer
        self._proposer_cache: dict[int, bytes] = {0: proposer}

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def from_validators(cls, validators: Iterable[Validator]) -> ValidatorSet:
        """A new set, as CometBFT's ``NewValidatorSet``: every validator starts at
        ``-1.125 * P``, priorities are centred (all 0), then incremented once, so
        ``proposer(0)`` is the proposer of the set's first height.

        Raises
        ------
        InvalidValidatorSet
            Empty, duplicate addresses, a power not in ``1..MAX_TOTAL_VOTING_POWER``, a bad key,
            or a total above ``MAX_TOTAL_VOTING_POWER``.
        """
        vals = _sorted_unique(validators)
        if not vals:
            raise InvalidValidatorSet("validator set is empty")
        for v in vals:
            _check_validator(v, allow_zero=False)
        total = sum(v.power for v in vals)
        if total > MAX_TOTAL_VOTING_POWER:
            raise InvalidValidatorSet(
                f"total voting power {total} exceeds maximum {MAX_TOTAL_VOTING_POWER}"
            )
        start = _new_priority(total)
        prios = _center(_rescale([start] * len(vals), PRIORITY_WINDOW_SIZE_FACTOR * total))
        powers = tuple(v.power for v in vals)
        prios, best = _increment(powers, prios, total, 1)
        return cls(vals, prios, vals[best].address)

    # --- the Validators protocol -----------------------------------------------------------

    def power_of(self, address: bytes) -> int:
        """Voting power of ``address`` (0 if it is not a validator)."""
        i = self._by_address.get(address)
        return 0 if i is None else self._vals[i].power

    @property
    def total_power(self) -> int:
        """Sum of all voting powers."""
        return self._total

    def proposer(self, round: int = 0) -> bytes:
        """Address of the proposer of ``round`` at this set's height.

        Round 0 is the set's own proposer; round ``r`` is the proposer after ``r`` further
        increments in one call (CometBFT ``CopyIncrementProposerPriority(r)``). Pure: the set
        is not changed.
        """
        if round < 0:
            raise ValueError(f"round must be >= 0, got {round}")
        cached = self._proposer_cache.get(round)
        if cached is None:
            _, best = _increment(self.powers, list(self._priorities), self._total, round)
            cached = self._vals[best].address
            self._proposer_cache[round] = cached
        return cached

    # --- accessors --------------------------------------------------------------------------

    @property
    def validators(self) -> tuple[Validator, ...]:
        """The validators, sorted by address."""
        return self._vals

    @property
    def priorities(self) -> tuple[int, ...]:
        """Proposer priorities, aligned with :attr:`validators`."""
        return self._priorities

    @property
    def powers(self) -> tuple[int, ...]:
        """Voting powers, aligned with :attr:`validators`."""
        return tuple(v.power for v in self._vals)

    def get(self, address: bytes) -> Validator | None:
        """The validator with ``address``, or None."""
        i = self._by_address.get(address)
        return None if i is None else self._vals[i]

    def priority_of(self, address: bytes) -> int:
        """Priority of a member.

        Raises
        ------
        KeyError
            If ``address`` is not a validator.
        """
        return self._priorities[self._by_address[address]]

    def __contains__(self, address: object) -> bool:
        return address in self._by_address

    def __len__(self) -> int:
        return len(self._vals)

    def __iter__(self) -> Iterator[Validator]:
        return iter(self._vals)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValidatorSet):
            return NotImplemented
        return (self._vals, self._priorities, self._proposer) == (
            other._vals,
            other._priorities,
            other._proposer,
        )

    def __hash__(self) -> int:
        return hash((self._vals, self._priorities, self._proposer))

    def __repr__(self) -> str:
        items = ", ".join(
            f"{v.address.hex()[:8]}:{v.power}/{p}"
            for v, p in zip(self._vals, self._priorities, strict=True)
        )
        return f"ValidatorSet([{items}], proposer={self._proposer.hex()[:8]})"

    # --- transitions ------------------------------------------------------------------------

    def advance(self, times: int = 1) -> ValidatorSet:
        """The set of the next height (``times`` increments, CometBFT does 1 per height).

        Raises
        ------
        ValueError
            If ``times`` is not positive.
        """
        prios, best = _increment(self.powers, list(self._priorities), self._total, times)
        return ValidatorSet(self._vals, prios, self._vals[best].address)

    def with_changes(self, changes: Iterable[Validator]) -> ValidatorSet:
        """Apply validator updates as CometBFT's ``UpdateWithChangeSet`` does.

        A change with power 0 removes that validator; any other power adds it (priority
        ``-1.125 * P``, with ``P`` the total after the updates and before the removals) or
        updates its power and key (priority kept). Then priorities are rescaled and centred.
        Everything is checked before anything is applied. Call :meth:`advance` on the result
        to get the set of a height; until then ``proposer(0)`` is the old proposer if it
        stayed, else the highest-priority validator.

        Raises
        ------
        InvalidValidatorSet
            Duplicate changes, a negative or too large power, removing a non-member, an empty
            result, or a total above ``MAX_TOTAL_VOTING_POWER``.
        """
        changes = _sorted_unique(changes)
        if not changes:
            return self
        for c in changes:
            _check_validator(c, allow_zero=True)
        updates = [c for c in changes if c.power > 0]
        removals = [c for c in changes if c.power == 0]
        new_count = sum(1 for u in updates if u.address not in self)
        if new_count == 0 and len(removals) == len(self._vals):
            raise InvalidValidatorSet("applying the changes would leave the validator set empty")
        for r in removals:
            if r.address not in self:
                raise InvalidValidatorSet(f"cannot remove {r.address.hex()}: not a validator")
        removed_power = sum(self.power_of(r.address) for r in removals)
        deltas = sorted(u.power - self.power_of(u.address) for u in updates)
        running = self._total - removed_power
        for d in deltas:  # CometBFT checks the running sum, smallest delta first
            running += d
            if running > MAX_TOTAL_VOTING_POWER:
                raise InvalidValidatorSet(
                    f"total voting power would exceed maximum {MAX_TOTAL_VOTING_POWER}"
                )
        total_before_removals = running + removed_power
        start = _new_priority(total_before_removals)

        merged: dict[bytes, tuple[Validator, int]] = {
            v.address: (v, p) for v, p in zip(self._vals, self._priorities, strict=True)
        }
        for u in updates:
            old = merged.get(u.address)
            merged[u.address] = (u, start if old is None else old[1])
        for r in removals:
            del merged[r.address]
        ordered = [merged[a] for a in sorted(merged)]
        vals = [v for v, _ in ordered]
        total = sum(v.power for v in vals)
        prios = _center(_rescale([p for _, p in ordered], PRIORITY_WINDOW_SIZE_FACTOR * total))
        proposer = self._proposer
        if proposer not in merged:
            proposer = vals[_highest(prios)].address
        return ValidatorSet(vals, prios, proposer)

    # --- hashing and encoding ---------------------------------------------------------------

    def hash(self) -> bytes:
        """keccak256 of RLP ``[[address, pub_key, power], ...]`` sorted by address.

        Commits to membership, keys and powers only (not priorities, which every node derives).
        """
        return keccak256(rlp.encode([[v.address, v.pub_key, v.power] for v in self._vals]))

    def encode(self) -> bytes:
        """RLP ``[[[address, pub_key, power, priority_int64_be], ...], proposer]`` for storage."""
        return rlp.encode(
            [
                [
                    [v.address, v.pub_key, v.power, p.to_bytes(8, "big", signed=True)]
                    for v, p in zip(self._vals, self._priorities, strict=True)
                ],
                self._proposer,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> ValidatorSet:
        """Inverse of :meth:`encode`.

        Raises
        ------
        InvalidValidatorSet
            If ``data`` is not a well-formed encoding of a valid set.
        """
        try:
            items, proposer = rlp.decode(data)
            vals, prios = [], []
            for address, pub_key, power, prio in items:
                if not all(isinstance(x, bytes) for x in (address, pub_key, power, prio)):
                    raise InvalidValidatorSet("validator fields must be RLP strings")
                if len(prio) != 8:
                    raise InvalidValidatorSet("priority must be 8 bytes")
                vals.append(
                    Validator(
                        bytes(address), bytes(pub_key), rlp.sedes.big_endian_int.deserialize(power)
                    )
                )
                prios.append(int.from_bytes(prio, "big", signed=True))
        except (
            rlp.exceptions.DecodingError,
            rlp.exceptions.DeserializationError,
            ValueError,
            TypeError,
        ) as e:
            if isinstance(e, InvalidValidatorSet):
                raise
            raise InvalidValidatorSet(f"malformed validator set encoding: {e}") from e
        return cls(vals, prios, bytes(proposer))
