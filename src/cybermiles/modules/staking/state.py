"""The staking module's state, in the storage of its account (``ModuleStore`` keys below).

=============================  ==============================================================
key                            value
=============================  ==============================================================
``candidates``                 RLP list of candidate owner addresses, sorted
``candidate/<owner>``          ``Candidate``
``pubkey/<pub_key>``           the owner using that consensus key
``delegators/<candidate>``     RLP list of the candidate's delegators, sorted
``delegation/<cand><deleg>``   ``Delegation`` (only while its shares are > 0)
``delegated/<delegator>``      RLP list of the candidates the delegator has shares on, sorted
``pending/<cand><deleg>``      integer: the delegation's amount still unbonding
``unbonding_heights``          RLP list of heights with unbonding entries, sorted
``unbonding/<height>``         RLP list of ``Unbonding`` maturing at that height
``total_supply``               integer: genesis alloc + genesis stake + every mint
``validators``                 RLP list: the current validators, highest power first
``backups``                    RLP list: the current backups, in draw order
``awards``                     RLP list of ``[candidate, is_backup, amount]`` of the last block
``beacon/<owner>``             ``BeaconCommitment``: the candidate's random-beacon commitment
=============================  ==============================================================
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import rlp
from rlp.sedes import Binary, CountableList, List, big_endian_int, boolean

from cybermiles.modules.addresses import STAKING
from cybermiles.modules.framework.codec import decode
from cybermiles.modules.framework.record import Record
from cybermiles.modules.framework.store import Backend, ModuleStore
from cybermiles.modules.staking.records import Candidate, Delegation, Unbonding

address = Binary.fixed_length(20)
_ADDRESSES = CountableList(address)
_HEIGHTS = CountableList(big_endian_int)
_UNBONDINGS = CountableList(Binary())  # each an encoded ``Unbonding``
_AWARDS = CountableList(List([address, boolean, big_endian_int]))


@dataclass(frozen=True, slots=True)
class BeaconCommitment(Record):
    """A candidate's hash-onion commitment (``modules/staking/beacon_commitments.py``).

    ``commitment`` is the live one (``b""``: none), which its next reveal must open, and
    ``reveals_left`` how many reveals it still allows. ``next_commitment`` replaces it from
    height ``next_from`` on (``b""`` there: the commitment is withdrawn); ``next_from`` 0 means
    nothing is pending.
    """

    commitment: bytes
    reveals_left: int
    next_commitment: bytes
    next_from: int


def _height_key(height: int) -> bytes:
    return b"unbonding/" + height.to_bytes(8, "big")


class StakingState:
    """Typed access to the staking module's storage; callers validate before writing."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.store = ModuleStore(backend, STAKING)

    # -- sorted address lists
    def _list(self, key: bytes) -> list[bytes]:
        raw = self.store.get(key)
        return [] if raw is None else list(decode(raw, _ADDRESSES))

    def _put_list(self, key: bytes, items: list[bytes]) -> None:
        if items:
            self.store.put(key, rlp.encode(items, sedes=_ADDRESSES))
        else:
            self.store.delete(key)

    def _insert(self, key: bytes, item: bytes) -> None:
        items = self._list(key)
        at = bisect.bisect_left(items, item)
        if at == len(items) or items[at] != item:
            items.insert(at, item)
            self._put_list(key, items)

    def _remove(self, key: bytes, item: bytes) -> None:
        items = self._list(key)
        if item in items:
            items.remove(item)
            self._put_list(key, items)

    # -- candidates
    def candidate_addresses(self) -> list[bytes]:
        return self._list(b"candidates")

    def get_candidate(self, owner: bytes) -> Candidate | None:
        raw = self.store.get(b"candidate/" + owner)
        return None if raw is None else Candidate.decode(raw)

    def candidates(self) -> list[Candidate]:
        """Every candidate, in address order."""
        found = (self.get_candidate(owner) for owner in self.candidate_addresses())
        return [c for c in found if c is not None]

    def put_candidate(self, candidate: Candidate) -> None:
        """Store ``candidate`` (new or changed) and keep the pub_key index in step."""
        old = self.get_candidate(candidate.owner)
        if old is None:
            self._insert(b"candidates", candidate.owner)
        elif old.pub_key != candidate.pub_key:
            self.store.delete(b"pubkey/" + old.pub_key)
        self.store.put(b"pubkey/" + candidate.pub_key, candidate.owner)
        self.store.put(b"candidate/" + candidate.owner, candidate.encode())

    def delete_candidate(self, owner: bytes) -> None:
        old = self.get_candidate(owner)
        if old is None:
            return
        self.store.delete(b"pubkey/" + old.pub_key)
        self.store.delete(b"candidate/" + owner)
        self._remove(b"candidates", owner)
        self.leave_sets(owner)
        self.set_beacon_commitment(owner, None)

    def owner_of_pub_key(self, pub_key: bytes) -> bytes | None:
        return self.store.get(b"pubkey/" + pub_key)

    # -- delegations
    def delegators(self, candidate: bytes) -> list[bytes]:
        return self._list(b"delegators/" + candidate)

    def delegated_candidates(self, delegator: bytes) -> list[bytes]:
        return self._list(b"delegated/" + delegator)

    def get_delegation(self, candidate: bytes, delegator: bytes) -> Delegation | None:
        raw = self.store.get(b"delegation/" + candidate + delegator)
        return None if raw is None else Delegation.decode(raw)

    def put_delegation(self, candidate: bytes, delegator: bytes, delegation: Delegation) -> None:
        """Store ``delegation``; one whose shares reached 0 is removed instead."""
        key = b"delegation/" + candidate + delegator
        if delegation.shares == 0:
            if self.store.get(key) is not None:
                self.store.delete(key)
                self._remove(b"delegators/" + candidate, delegator)
                self._remove(b"delegated/" + delegator, candidate)
            return
        if self.store.get(key) is None:
            self._insert(b"delegators/" + candidate, delegator)
            self._insert(b"delegated/" + delegator, candidate)
        self.store.put(key, delegation.encode())

    def replace_delegation(
        self, candidate: bytes, delegator: bytes, delegation: Delegation
    ) -> None:
        """Overwrite an existing delegation whose shares stay above 0 (no index changes)."""
        assert delegation.shares > 0
        self.store.put(b"delegation/" + candidate + delegator, delegation.encode())

    # -- unbonding
    def pending(self, candidate: bytes, delegator: bytes) -> int:
        return self.store.get_int(b"pending/" + candidate + delegator)

    def unbonding_heights(self) -> list[int]:
        raw = self.store.get(b"unbonding_heights")
        return [] if raw is None else list(decode(raw, _HEIGHTS))

    def unbondings_at(self, height: int) -> list[Unbonding]:
        raw = self.store.get(_height_key(height))
        return [] if raw is None else [Unbonding.decode(e) for e in decode(raw, _UNBONDINGS)]

    def add_unbonding(self, entry: Unbonding) -> None:
        height = entry.mature_height
        entries = self.unbondings_at(height)
        if not entries:
            heights = self.unbonding_heights()
            bisect.insort(heights, height)
            self.store.put(b"unbonding_heights", rlp.encode(heights, sedes=_HEIGHTS))
        entries.append(entry)
        encoded = [e.encode() for e in entries]
        self.store.put(_height_key(height), rlp.encode(encoded, sedes=_UNBONDINGS))
        key = b"pending/" + entry.candidate + entry.delegator
        self.store.put_int(key, self.store.get_int(key) + entry.amount)

    def pop_unbondings(self, height: int) -> list[Unbonding]:
        """Remove and return every entry maturing at or before ``height``, oldest first."""
        heights = self.unbonding_heights()
        due = [h for h in heights if h <= height]
        if not due:
            return []
        entries: list[Unbonding] = []
        for h in due:
            entries.extend(self.unbondings_at(h))
            self.store.delete(_height_key(h))
        rest = heights[len(due) :]
        if rest:
            self.store.put(b"unbonding_heights", rlp.encode(rest, sedes=_HEIGHTS))
        else:
            self.store.delete(b"unbonding_heights")
        for entry in entries:
            key = b"pending/" + entry.candidate + entry.delegator
            self.store.put_int(key, self.store.get_int(key) - entry.amount)
        return entries

    def total_pending(self) -> int:
        return sum(e.amount for h in self.unbonding_heights() for e in self.unbondings_at(h))

    # -- totals
    def total_supply(self) -> int:
        return self.store.get_int(b"total_supply")

    def set_total_supply(self, value: int) -> None:
        self.store.put_int(b"total_supply", value)

    def total_stake(self) -> int:
        """The shares of all candidates."""
        return sum(c.shares for c in self.candidates())

    # -- the current sets
    def validators(self) -> list[bytes]:
        return self._list(b"validators")

    def backups(self) -> list[bytes]:
        return self._list(b"backups")

    def set_sets(self, validators: list[bytes], backups: list[bytes]) -> None:
        """Store the sets as given (validators by power, backups in draw order)."""
        self._put_list(b"validators", validators)
        self._put_list(b"backups", backups)

    def leave_sets(self, owner: bytes) -> None:
        """A deactivated, jailed or withdrawn candidate leaves the sets at once."""
        for key in (b"validators", b"backups"):
            items = self._list(key)
            if owner in items:
                items.remove(owner)
                self._put_list(key, items)

    # -- the last block's awards
    def awards(self) -> list[tuple[bytes, bool, int]]:
        raw = self.store.get(b"awards")
        if raw is None:
            return []
        return [(a, bool(b), n) for a, b, n in decode(raw, _AWARDS)]

    def set_awards(self, awards: list[tuple[bytes, bool, int]]) -> None:
        if awards:
            self.store.put(b"awards", rlp.encode([list(a) for a in awards], sedes=_AWARDS))
        else:
            self.store.delete(b"awards")

    # -- random-beacon commitments
    def beacon_commitment(self, owner: bytes) -> BeaconCommitment | None:
        raw = self.store.get(b"beacon/" + owner)
        return None if raw is None else BeaconCommitment.decode(raw)

    def set_beacon_commitment(self, owner: bytes, record: BeaconCommitment | None) -> None:
        """Store ``record``; None (or a record with nothing live or pending) deletes it."""
        key = b"beacon/" + owner
        if record is None or (not record.commitment and not record.next_from):
            self.store.delete(key)
        else:
            self.store.put(key, record.encode())


def has_stake(backend: Backend, address: bytes) -> bool:
    """True for a candidate or an account with a delegation (delegations have shares > 0)."""
    state = StakingState(backend)
    return state.get_candidate(address) is not None or bool(state.delegated_candidates(address))
