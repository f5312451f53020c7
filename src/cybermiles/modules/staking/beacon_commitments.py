"""The candidates' random-beacon commitments: the chain side of ``consensus.beacon``.

A candidate registers the tip of a hash onion with ``setBeaconCommitment(bytes32)``. The
commitment takes effect ``COMMIT_DELAY`` blocks later (so it cannot be chosen knowing the
beacon it will first extend) and then allows ``ONION_LENGTH`` reveals: a block proposed by the
candidate at height ``h`` must carry the preimage of its live commitment, which then becomes
that preimage. A candidate with no live commitment (none registered, not active yet, withdrawn,
or all its reveals used) proposes without a reveal and the beacon takes the fallback step.

Whether a proposer must reveal at height ``h`` depends only on the state before block ``h``
(every change made in block ``h`` takes effect at ``h + COMMIT_DELAY`` or later), so a proposer
can compute ``beacon_h`` for its header's ``mixHash`` before executing the block, and it has no
choice between revealing and not.

A pending commitment is applied lazily, by whatever reads the record at a height at or past its
``next_from`` (``settled``): the result is the same whenever it happens.

Consensus calls ``advance_beacon`` (or ``expected_commitment`` then ``consume_reveal``) once per
block, inside the block's state transition so the state root covers the advanced commitment.
"""

from __future__ import annotations

from cybermiles.consensus.beacon import DEFAULT_ONION_LENGTH, next_beacon, verify_reveal
from cybermiles.modules.framework.store import Backend
from cybermiles.modules.staking.state import BeaconCommitment, StakingState

__all__ = [
    "COMMIT_DELAY",
    "ONION_LENGTH",
    "BeaconError",
    "advance_beacon",
    "commit",
    "consume_reveal",
    "expected_commitment",
    "has_commitment",
    "settled",
]

ONION_LENGTH = DEFAULT_ONION_LENGTH  # reveals one commitment allows
COMMIT_DELAY = 64  # blocks between registering a commitment and its first use


class BeaconError(Exception):
    """A block's reveal does not fit its proposer's commitment: the block is invalid."""


def settled(record: BeaconCommitment | None, height: int) -> BeaconCommitment | None:
    """``record`` as it stands at ``height``: a pending change due by then is applied."""
    if record is None or not record.next_from or height < record.next_from:
        return record
    left = ONION_LENGTH if record.next_commitment else 0
    return BeaconCommitment(record.next_commitment, left, b"", 0)


def _live(record: BeaconCommitment | None) -> bytes | None:
    if record is None or not record.commitment or record.reveals_left <= 0:
        return None
    return record.commitment


def expected_commitment(backend: Backend, proposer: bytes, height: int) -> bytes | None:
    """The commitment the reveal of ``proposer``'s block at ``height`` must open, or None when
    that block must carry no reveal (the beacon takes the fallback step)."""
    record = StakingState(backend).beacon_commitment(proposer)
    return _live(settled(record, height))


def consume_reveal(backend: Backend, proposer: bytes, reveal: bytes, height: int) -> bool:
    """Check ``reveal`` against ``proposer``'s live commitment at ``height`` and, if it opens
    it, make the reveal the new commitment (one reveal fewer left) and return True. Otherwise
    (no live commitment, wrong reveal) write nothing and return False."""
    state = StakingState(backend)
    record = settled(state.beacon_commitment(proposer), height)
    commitment = _live(record)
    if record is None or commitment is None or not verify_reveal(commitment, reveal):
        return False
    left = record.reveals_left - 1
    state.set_beacon_commitment(
        proposer, record.copy(commitment=reveal if left else b"", reveals_left=left)
    )
    return True


def advance_beacon(
    backend: Backend, prev: bytes, proposer: bytes, reveal: bytes | None, height: int
) -> bytes:
    """The beacon of block ``height`` proposed by ``proposer`` (its owner address), consuming
    the block's reveal.

    Raises
    ------
    BeaconError
        If the block carries a reveal though the proposer has no live commitment, carries none
        though it has one, or carries one that does not open it. Nothing is written then.
    """
    commitment = expected_commitment(backend, proposer, height)
    if commitment is None:
        if reveal is not None:
            raise BeaconError(f"block {height}: a reveal from a proposer without a commitment")
        return next_beacon(prev, None, proposer, height)
    if reveal is None:
        raise BeaconError(f"block {height}: the proposer's reveal is missing")
    if not consume_reveal(backend, proposer, reveal, height):
        raise BeaconError(f"block {height}: the reveal does not open the proposer's commitment")
    return next_beacon(prev, reveal, proposer, height)


def commit(state: StakingState, owner: bytes, commitment: bytes, height: int) -> None:
    """Register ``commitment`` (32 bytes; all zero: withdraw) for ``owner`` in block ``height``,
    effective from ``height + COMMIT_DELAY``: until then the live commitment stays as it is.
    A second call before that replaces the pending one (and restarts the delay)."""
    record = settled(state.beacon_commitment(owner), height)
    if record is None:
        record = BeaconCommitment(b"", 0, b"", 0)
    pending = b"" if commitment == bytes(32) else commitment
    state.set_beacon_commitment(
        owner, record.copy(next_commitment=pending, next_from=height + COMMIT_DELAY)
    )


def has_commitment(state: StakingState, owner: bytes, height: int) -> bool:
    """Whether ``owner`` has a live or pending commitment at ``height`` (one to withdraw)."""
    record = settled(state.beacon_commitment(owner), height)
    return record is not None and (_live(record) is not None or bool(record.next_commitment))
