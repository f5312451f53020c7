"""The chain's random beacon: a RANDAO over per-validator hash onions (docs/beacon.md).

Each validator builds a *hash onion* from a secret 32-byte seed: layer 0 is the seed and layer
``i`` is ``keccak256(layer i-1)``; the top layer ``N`` is the *tip*, which the validator
registers in the staking module as its beacon commitment. When it proposes a block it reveals
the next layer down, ``R`` with ``keccak256(R) == commitment``, and the commitment becomes ``R``.
Only one value passes that check, so a proposer cannot choose its reveal, and checking it costs
one hash.

The beacon of block ``h`` (carried in its header's ``mixHash``)::

    beacon_0 = GENESIS_BEACON
    beacon_h = keccak256(beacon_{h-1} || R)                         the proposer revealed R
    beacon_h = keccak256(beacon_{h-1} || proposer || uint64_be(h))  it has no live commitment

The second form (no commitment, onion exhausted) leaves the proposer no choice either, but is
predictable. A proposer's only influence is to withhold its block: at most one bit per block it
proposes (``docs/beacon.md``, "Bias bound").

Everything here is pure; the commitments' state lives in
``cybermiles.modules.staking.beacon_commitments``.
"""

from __future__ import annotations

from sha3 import keccak_256

from cybermiles.crypto.keccak import keccak256

__all__ = [
    "CHECKPOINT_INTERVAL",
    "DEFAULT_ONION_LENGTH",
    "GENESIS_BEACON",
    "SEED_DOMAIN",
    "HashOnion",
    "next_beacon",
    "onion_seed",
    "verify_reveal",
]

DEFAULT_ONION_LENGTH = 2**20  # reveals per onion
CHECKPOINT_INTERVAL = 1024  # layers between stored checkpoints
SEED_DOMAIN = b"cybermiles/beacon-seed"
GENESIS_BEACON = keccak256(b"cybermiles/genesis-beacon")  # beacon_0, the value block 1 extends
HASH_SIZE = 32
ADDRESS_SIZE = 20
MAX_HEIGHT = 2**64 - 1


def onion_seed(private_seed: bytes, index: int) -> bytes:
    """The seed of a validator's onion number ``index`` (0, 1, ... as it re-commits).

    ``keccak256(b"cybermiles/beacon-seed" || private_seed || uint64_be(index))`` where
    ``private_seed`` is the 32-byte Ed25519 private seed of its consensus key: the node can
    rebuild any of its onions from the key alone. Revealing the whole onion (its last reveal is
    the seed) discloses nothing about the key.
    """
    if len(private_seed) != HASH_SIZE:
        raise ValueError(f"private seed must be {HASH_SIZE} bytes, got {len(private_seed)}")
    if not 0 <= index <= MAX_HEIGHT:
        raise ValueError(f"onion index {index} out of [0, 2**64)")
    return keccak256(SEED_DOMAIN + private_seed + index.to_bytes(8, "big"))


class HashOnion:
    """The layers ``seed, H(seed), ..., H^length(seed)`` with checkpoints every 1024 layers.

    Building costs ``length`` hashes and keeps ``length / 1024 + 1`` checkpoints (32 KiB for
    2^20 layers). ``reveal(step)`` is layer ``length - step``: step 0 is the tip (the
    commitment), step ``length`` the seed. Any reveal costs at most 1023 hashes; revealing in
    order (steps 1, 2, 3, ...) costs about one hash each, since the segment last expanded is
    kept.
    """

    __slots__ = ("_checkpoints", "_segment", "_segment_index", "length", "tip")

    def __init__(self, seed: bytes, length: int = DEFAULT_ONION_LENGTH) -> None:
        if len(seed) != HASH_SIZE:
            raise ValueError(f"onion seed must be {HASH_SIZE} bytes, got {len(seed)}")
        if length < 1:
            raise ValueError(f"onion length must be positive, got {length}")
        self.length = length
        checkpoints = [seed]
        value = seed
        layer = 0
        while layer < length:
            run = min(CHECKPOINT_INTERVAL, length - layer)
            for _ in range(run):
                value = keccak_256(value).digest()
            layer += run
            if run == CHECKPOINT_INTERVAL:
                checkpoints.append(value)
        self._checkpoints = checkpoints
        self.tip: bytes = value  # layer ``length``, the commitment to register
        self._segment_index = -1
        self._segment: list[bytes] = []

    def layer(self, index: int) -> bytes:
        """Layer ``index`` (0 the seed, ``length`` the tip)."""
        if not 0 <= index <= self.length:
            raise IndexError(f"layer {index} out of [0, {self.length}]")
        segment, offset = divmod(index, CHECKPOINT_INTERVAL)
        if segment != self._segment_index:
            value = self._checkpoints[segment]
            layers = [value]
            for _ in range(
                min(CHECKPOINT_INTERVAL - 1, self.length - segment * CHECKPOINT_INTERVAL)
            ):
                value = keccak_256(value).digest()
                layers.append(value)
            self._segment_index, self._segment = segment, layers
        return self._segment[offset]

    def reveal(self, step: int) -> bytes:
        """The ``step``-th reveal (1 ≤ step ≤ length); ``reveal(0)`` is the tip.

        ``keccak256(reveal(step)) == reveal(step - 1)``.
        """
        if not 0 <= step <= self.length:
            raise IndexError(f"reveal step {step} out of [0, {self.length}]")
        return self.layer(self.length - step)

    def step_of(self, commitment: bytes) -> int | None:
        """The step whose reveal is ``commitment`` (0 for the tip), or None if not in the onion.

        Scans the onion once (about ``2 * length`` hashes): how a node that lost its step
        counter finds where it is from the commitment the staking module holds.
        """
        for step in range(self.length + 1):
            if self.reveal(step) == commitment:
                return step
        return None


def verify_reveal(commitment: bytes, reveal: bytes) -> bool:
    """Whether ``reveal`` opens ``commitment``: both 32 bytes and ``keccak256(reveal)`` equal."""
    if len(commitment) != HASH_SIZE or len(reveal) != HASH_SIZE:
        return False
    return keccak256(reveal) == commitment


def next_beacon(prev: bytes, reveal: bytes | None, proposer: bytes, height: int) -> bytes:
    """The beacon of block ``height``, from its parent's beacon ``prev``.

    With a reveal: ``keccak256(prev || reveal)`` (64 bytes hashed). Without one (the proposer
    has no live commitment): ``keccak256(prev || proposer || uint64_be(height))`` (60 bytes, so
    the two forms never hash the same input). ``proposer`` is the owner address of the block's
    proposer. The caller checks the reveal against the commitment first (``verify_reveal``).
    """
    if len(prev) != HASH_SIZE:
        raise ValueError(f"previous beacon must be {HASH_SIZE} bytes, got {len(prev)}")
    if len(proposer) != ADDRESS_SIZE:
        raise ValueError(f"proposer must be a {ADDRESS_SIZE}-byte address, got {len(proposer)}")
    if not 1 <= height <= MAX_HEIGHT:
        raise ValueError(f"height {height} out of [1, 2**64)")
    if reveal is not None:
        if len(reveal) != HASH_SIZE:
            raise ValueError(f"reveal must be {HASH_SIZE} bytes, got {len(reveal)}")
        return keccak256(prev + reveal)
    return keccak256(prev + proposer + height.to_bytes(8, "big"))
