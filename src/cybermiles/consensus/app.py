"""What the consensus reactor needs from the chain: the application interface.

The reactor agrees on blocks it treats as opaque bytes identified by their hash (the Ethereum
header hash). The chain side (``node``) builds, checks and commits them. Heights are block
numbers; height ``h``'s validator set is known once block ``h - 1`` is committed.

Call order for one height ``h`` on one node::

    validators(h)                      -> the set that votes on h (and whose proposer proposes)
    propose(h, round, last_commit)     -> only on the proposer: (block_hash, block_bytes)
    check(h, block_bytes)              -> every node, for the proposal it received: the block's
                                          hash if it is valid on top of h - 1, else None
    commit(h, block_bytes, commit)     -> every node once +2/3 precommitted the hash

``last_commit`` is the commit of block ``h - 1`` (None at height 1): the proposer puts its hash
in the new block (``extraData``) and its signers feed rewards and downtime. ``check`` and
``commit`` may be called for a block the node proposed itself. ``commit`` of a block that fails
to execute identically (another state root than the header's) must raise ``Divergence``: the
node stops instead of forking silently.
"""

from __future__ import annotations

from typing import Protocol

from cybermiles.consensus.commit import Commit
from cybermiles.consensus.proposer import ValidatorSet
from cybermiles.consensus.votes import DuplicateVoteEvidence


class Divergence(Exception):
    """Executing a committed block gave another result than the network agreed on."""


class ConsensusApp(Protocol):
    def height(self) -> int:
        """The last committed block number (0: only genesis)."""
        ...

    def validators(self, height: int) -> ValidatorSet:
        """The validator set voting on block ``height`` (``height <= self.height() + 1``)."""
        ...

    def propose(self, height: int, round: int, last_commit: Commit | None) -> tuple[bytes, bytes]:
        """Build block ``height`` from the pool: ``(block_hash, block_bytes)``; nothing commits."""
        ...

    def check(self, height: int, block: bytes) -> bytes | None:
        """The hash of ``block`` if it is a valid block ``height`` on the head, else None."""
        ...

    def commit(self, height: int, block: bytes, commit: Commit) -> None:
        """Apply and persist ``block`` with its ``commit``; raises ``Divergence`` (see above)."""
        ...

    def add_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        """Keep ``evidence`` for inclusion in a coming block (then staking slashes)."""
        ...

    def block_and_commit(self, height: int) -> tuple[bytes, Commit] | None:
        """A committed block and its commit, for peers that sync (None if not kept)."""
        ...
