"""Where governance keeps its state: keys in the storage of ``0x…1001`` (see ``ModuleStore``).

| key | value |
|---|---|
| ``gov/next_id`` | the id the next proposal gets (ids start at 1) |
| ``gov/active`` | RLP list of the ids still voting, ascending |
| ``gov/proposal/<id>`` | the proposal record (``records``) |
| ``gov/votes/<id>`` | RLP list of ``[voter, answer]``, voters ascending; dropped once decided |
| ``gov/scheduled`` | RLP list of ``[height, id, name, value]``: passed changes not applied yet |
| ``gov/upgrades`` | RLP list of ``[height, id, name, version]``: passed upgrade plans in force |

``<id>`` is the decimal id. The parameters themselves are under ``params`` (``modules.params``);
no governance key collides with it (all start with ``gov/``).
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp
from rlp.sedes import Binary, CountableList, List, big_endian_int, binary

from cybermiles.modules.addresses import GOVERNANCE
from cybermiles.modules.framework.codec import decode
from cybermiles.modules.framework.store import Backend, ModuleStore
from cybermiles.modules.governance.records import Proposal, decode_proposal, encode_proposal

NEXT_ID_KEY = b"gov/next_id"
ACTIVE_KEY = b"gov/active"
SCHEDULED_KEY = b"gov/scheduled"
UPGRADES_KEY = b"gov/upgrades"

_IDS = CountableList(big_endian_int)
_VOTES = CountableList(List([Binary.fixed_length(20), big_endian_int]))
_SCHEDULED = CountableList(List([big_endian_int, big_endian_int, binary, big_endian_int]))
_UPGRADES = CountableList(List([big_endian_int, big_endian_int, binary, binary]))


@dataclass(frozen=True, slots=True)
class ScheduledChange:
    """A passed parameter change, applied at the end of block ``height``."""

    height: int
    proposal_id: int
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """A passed upgrade plan as stored (``upgrade.UpgradePlan`` is the public view)."""

    height: int
    proposal_id: int
    name: str
    version: str


def _store(backend: Backend) -> ModuleStore:
    return ModuleStore(backend, GOVERNANCE)


def _proposal_key(proposal_id: int) -> bytes:
    return b"gov/proposal/%d" % proposal_id


def _votes_key(proposal_id: int) -> bytes:
    return b"gov/votes/%d" % proposal_id


# -- ids
def allocate_id(backend: Backend) -> int:
    """The next proposal id (1, 2, …), consumed."""
    store = _store(backend)
    proposal_id = store.get_int(NEXT_ID_KEY) or 1
    store.put_int(NEXT_ID_KEY, proposal_id + 1)
    return proposal_id


def proposal_count(backend: Backend) -> int:
    """How many proposals were ever made (the highest id)."""
    return max(_store(backend).get_int(NEXT_ID_KEY) - 1, 0)


def active_ids(backend: Backend) -> list[int]:
    raw = _store(backend).get(ACTIVE_KEY)
    return [] if raw is None else list(decode(raw, _IDS))


def set_active_ids(backend: Backend, ids: list[int]) -> None:
    store = _store(backend)
    if ids:
        store.put(ACTIVE_KEY, rlp.encode(sorted(ids), sedes=_IDS))
    else:
        store.delete(ACTIVE_KEY)


# -- proposals
def get_proposal(backend: Backend, proposal_id: int) -> Proposal | None:
    raw = _store(backend).get(_proposal_key(proposal_id))
    return None if raw is None else decode_proposal(raw)


def put_proposal(backend: Backend, proposal: Proposal) -> None:
    _store(backend).put(_proposal_key(proposal.id), encode_proposal(proposal))


# -- votes
def get_votes(backend: Backend, proposal_id: int) -> dict[bytes, int]:
    """voter -> answer, the last vote of each voter."""
    raw = _store(backend).get(_votes_key(proposal_id))
    if raw is None:
        return {}
    return {bytes(voter): answer for voter, answer in decode(raw, _VOTES)}


def put_vote(backend: Backend, proposal_id: int, voter: bytes, answer: int) -> None:
    votes = get_votes(backend, proposal_id)
    votes[voter] = answer
    pairs = [[v, a] for v, a in sorted(votes.items())]
    _store(backend).put(_votes_key(proposal_id), rlp.encode(pairs, sedes=_VOTES))


def drop_votes(backend: Backend, proposal_id: int) -> None:
    _store(backend).delete(_votes_key(proposal_id))


# -- scheduled parameter changes
def scheduled_changes(backend: Backend) -> list[ScheduledChange]:
    """Passed parameter changes not applied yet, by (height, proposal id)."""
    raw = _store(backend).get(SCHEDULED_KEY)
    if raw is None:
        return []
    return [
        ScheduledChange(height, pid, bytes(name).decode(), value)
        for height, pid, name, value in decode(raw, _SCHEDULED)
    ]


def set_scheduled_changes(backend: Backend, changes: list[ScheduledChange]) -> None:
    store = _store(backend)
    if not changes:
        store.delete(SCHEDULED_KEY)
        return
    rows = [
        [c.height, c.proposal_id, c.name.encode(), c.value]
        for c in sorted(changes, key=lambda c: (c.height, c.proposal_id))
    ]
    store.put(SCHEDULED_KEY, rlp.encode(rows, sedes=_SCHEDULED))


# -- upgrade plans
def upgrade_plans(backend: Backend) -> list[PlanRecord]:
    """Passed upgrade plans in force, by (height, proposal id)."""
    raw = _store(backend).get(UPGRADES_KEY)
    if raw is None:
        return []
    return [
        PlanRecord(height, pid, bytes(name).decode(), bytes(version).decode())
        for height, pid, name, version in decode(raw, _UPGRADES)
    ]


def set_upgrade_plans(backend: Backend, plans: list[PlanRecord]) -> None:
    store = _store(backend)
    if not plans:
        store.delete(UPGRADES_KEY)
        return
    rows = [
        [p.height, p.proposal_id, p.name.encode(), p.version.encode()]
        for p in sorted(plans, key=lambda p: (p.height, p.proposal_id))
    ]
    store.put(UPGRADES_KEY, rlp.encode(rows, sedes=_UPGRADES))
