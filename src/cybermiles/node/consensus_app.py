"""The chain side of BFT consensus: ``consensus.app.ConsensusApp`` over a ``Blockchain``.

Blocks travel as ``chain.block_codec.NetBlock`` bytes: the Ethereum header, the raw
transactions, the previous block's canonical commit (``last_commit``), duplicate-vote evidence,
the proposer's random-beacon reveal and the round the block was proposed in. The header's
``extraData`` is ``keccak256(last_commit)`` (empty at height 1), so the block hash the
validators sign also fixes the previous commit.

Random beacon (docs/consensus.md "Random beacon"): the proposer of block ``h`` is the proposer of
the block's ``round`` in the set voting on ``h`` (``validators(h).proposer(round)``, an owner
address). Every execution of the block (propose, check, commit) opens it with
``advance_beacon`` for that proposer and the block's reveal, before the transactions; the beacon
it returns is the header's ``mixHash``, the EVM's PREVRANDAO and the end-of-block election's
seed. A missing, extra or wrong reveal fails the execution, a wrong ``mixHash`` differs from it:
``check`` returns None, ``commit`` raises ``Divergence``. A node holding a validator key builds
its hash onion (onion ``onion_index``, 0 at genesis) in the background at construction and
reveals ``onion.reveal(2^20 - reveals_left + 1)`` of its live commitment.

Prepare / check / commit: ``propose`` and ``check`` execute a block with
``Blockchain.prepare_block`` (whole header computed, nothing persisted) and keep it as the one
cached prepared block, keyed by height and hash. ``commit`` of that block writes it in one
LMDB write transaction without executing again; any other block is executed first. Checking
another block of the same height discards the cached one, which leaves the state and the tries
exactly as before.

Validator sets (the rule, also in docs/architecture.md "Storage layout"): the set voting on height
``h`` is made of the staking validators and backups as stored in the state after block
``h - 2`` (the genesis state for ``h <= 2``), each with its consensus key (the candidate's
``pub_key``), address (the candidate owner) and voting power :func:`consensus_power` of its
staking power in that state. Members without staking power are left out; if nobody would be
left, the set does not change. Sets chain like CometBFT's: ``set(1) =
ValidatorSet.from_validators(genesis members)``, and ``set(h + 2) =
set(h + 1).with_changes(diff).advance()`` with the diff taken from the state after block ``h``.
The set of ``h + 2`` (with its proposer priorities) is stored in the ``valsets`` table in the
write transaction of block ``h``, so a restarted node computes the same proposers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import rlp

from cybermiles.chain.block_codec import (
    NetBlock,
    decode_consensus_data,
    encode_consensus_data,
)
from cybermiles.chain.errors import ChainError
from cybermiles.chain.header import Header
from cybermiles.chain.store import write_consensus_data, write_seen_commit, write_validator_set
from cybermiles.chain.transactions import Transaction, decode_transaction
from cybermiles.consensus.app import Divergence
from cybermiles.consensus.beacon import HashOnion
from cybermiles.consensus.commit import Commit
from cybermiles.consensus.proposer import MAX_TOTAL_VOTING_POWER, ValidatorSet
from cybermiles.consensus.signing import MalformedMessage, decode_vote
from cybermiles.consensus.types import Validator
from cybermiles.consensus.votes import DuplicateVoteEvidence, InvalidEvidence
from cybermiles.crypto.ed25519 import PUBLIC_KEY_SIZE
from cybermiles.crypto.keccak import keccak256
from cybermiles.mempool import Mempool
from cybermiles.modules.addresses import STAKING
from cybermiles.modules.framework.block import DoubleSign
from cybermiles.modules.framework.store import Backend
from cybermiles.modules.params import read_params
from cybermiles.modules.staking.beacon_commitments import ONION_LENGTH, settled
from cybermiles.modules.staking.power import power_table
from cybermiles.modules.staking.state import BeaconCommitment, StakingState
from cybermiles.node.blockchain import (
    BeaconInput,
    Blockchain,
    BuiltBlock,
    PreparedBlock,
    UpgradeRequired,
)
from cybermiles.node.keys import ValidatorKey
from cybermiles.node.producer import pool_config, update_pool

__all__ = [
    "EVIDENCE_MAX_AGE",
    "MAX_BLOCK_EVIDENCE",
    "MAX_FUTURE_SECONDS",
    "MAX_PENDING_EVIDENCE",
    "MAX_PROPOSAL_ROUND",
    "POWER_UNIT",
    "BeaconUnavailable",
    "ChainConsensusApp",
    "consensus_power",
    "onion_for",
    "staking_validators",
]

log = logging.getLogger("cybermiles.consensus_app")

MAX_FUTURE_SECONDS = 10  # a block's timestamp may be at most this far ahead of the local clock
EVIDENCE_MAX_AGE = 100  # blocks: older evidence is neither included nor kept
MAX_BLOCK_EVIDENCE = 32  # evidence entries per block
MAX_PENDING_EVIDENCE = 1_000  # evidence kept for inclusion (oldest dropped first)
POWER_UNIT = 10**9  # staking power (wei) per unit of consensus voting power
MAX_PROPOSAL_ROUND = 10_000  # a block's round above this is invalid (proposer(r) costs O(r))
ONION_WAIT_SECONDS = 120.0  # how long a proposal waits for the onion still being built


class BeaconUnavailable(ValueError):
    """This node cannot give the reveal its proposal needs (no key, not the round's proposer,
    onion not built, or its onion does not match the live commitment): it does not propose."""


_onions: dict[tuple[bytes, int], HashOnion] = {}
_onions_lock = threading.Lock()


def onion_for(key: ValidatorKey, index: int = 0) -> HashOnion:
    """Onion ``index`` of ``key`` (2^20 layers, about 2 s to build), built once per process."""
    cache_key = (key.pub_key, index)
    with _onions_lock:
        onion = _onions.get(cache_key)
    if onion is None:
        onion = HashOnion(key.onion_seed(index), ONION_LENGTH)
        with _onions_lock:
            onion = _onions.setdefault(cache_key, onion)
    return onion


def next_reveal_step(record: BeaconCommitment) -> int:
    """The onion step a live commitment's next reveal is: ``2^20 - reveals_left + 1``."""
    return ONION_LENGTH - record.reveals_left + 1


def consensus_power(powers: list[int]) -> list[int]:
    """Consensus voting powers (int64 > 0, total at most ``MAX_TOTAL_VOTING_POWER``) for
    staking powers in wei: ``max(1, power // unit)`` with ``unit = POWER_UNIT`` (1 gwei), or
    ``POWER_UNIT * 10**k`` with the smallest ``k`` whose total fits."""
    unit = POWER_UNIT
    while True:
        scaled = [max(1, p // unit) for p in powers]
        if sum(scaled) <= MAX_TOTAL_VOTING_POWER:
            return scaled
        unit *= 10


def staking_validators(backend: Backend) -> list[Validator]:
    """The consensus members the staking state elects: validators and backups with staking
    power > 0 and a 32-byte key, sorted by address, powers by :func:`consensus_power`."""
    state = StakingState(backend)
    members = sorted(set(state.validators()) | set(state.backups()))
    table = power_table(backend, read_params(backend))
    chosen: list[tuple[bytes, bytes, int]] = []
    for owner in members:
        power = table.candidates.get(owner, 0)
        candidate = state.get_candidate(owner)
        if power <= 0 or candidate is None or len(candidate.pub_key) != PUBLIC_KEY_SIZE:
            continue
        chosen.append((owner, candidate.pub_key, power))
    powers = consensus_power([p for _, _, p in chosen])
    return [Validator(a, k, p) for (a, k, _), p in zip(chosen, powers, strict=True)]


def next_validator_set(current: ValidatorSet, members: list[Validator]) -> ValidatorSet:
    """The set after ``current`` given the staking ``members`` (CometBFT's update + one
    increment); an empty ``members`` leaves the membership unchanged."""
    if not members:
        return current.advance()
    wanted = {v.address: v for v in members}
    changes = [v for v in members if current.get(v.address) != v]
    changes += [Validator(v.address, v.pub_key, 0) for v in current if v.address not in wanted]
    return current.with_changes(changes).advance()


@dataclass(slots=True)
class _Cached:
    """The one prepared block: executed on the head, header verified, not persisted."""

    height: int
    hash: bytes
    block: NetBlock
    prepared: PreparedBlock


class ChainConsensusApp:
    """``ConsensusApp`` for one node's ``Blockchain`` and ``Mempool``.

    ``clock()`` gives wall-clock seconds (block timestamps of proposals and the future bound
    of checks). ``max_block_txs`` caps the transactions of a proposal. ``validator_key`` (a
    validator node's consensus key; None on a full node) is what the node's beacon reveals
    derive from: its onion number ``onion_index`` is built in the background at construction
    (:meth:`onion`), and :meth:`beacon_reveal` gives the reveal a proposal carries.
    """

    def __init__(
        self,
        blockchain: Blockchain,
        mempool: Mempool,
        *,
        chain_id: int,
        clock: Callable[[], float] = time.time,
        max_block_txs: int = 10_000,
        validator_key: ValidatorKey | None = None,
        onion_index: int = 0,
    ) -> None:
        if chain_id != blockchain.chain_id:
            raise ValueError(f"chain id {chain_id} differs from the chain's {blockchain.chain_id}")
        self.chain = blockchain
        self.mempool = mempool
        self.chain_id = chain_id
        self.clock = clock
        self.max_block_txs = max_block_txs
        self.listeners: list[Callable[[BuiltBlock], None]] = []
        self._lock = threading.RLock()
        self._cached: _Cached | None = None
        self._evidence: OrderedDict[bytes, DuplicateVoteEvidence] = OrderedDict()
        self._sets: OrderedDict[int, ValidatorSet] = OrderedDict()
        self._bootstrap()
        self.validator_key = validator_key
        self.onion_index = onion_index
        self._onion: HashOnion | None = None
        self._onion_ready = threading.Event()
        self._onion_warned: bytes | None = None  # the commitment last warned about
        if validator_key is not None:
            threading.Thread(
                target=self._build_onion,
                args=(validator_key, self._own_commitment(validator_key)),
                name="beacon-onion",
                daemon=True,
            ).start()

    # ------------------------------------------------------------------ validator sets

    def _bootstrap(self) -> None:
        """Store the sets of heights 1 and 2 (from the genesis state) on a new chain."""
        if self.chain.blocks.validator_set(1) is not None:
            return
        if self.chain.head.block_number != 0:
            raise ChainError(
                "this chain has blocks but no consensus validator sets (a dev chain?): "
                "start consensus on a new data directory"
            )
        members = staking_validators(self.chain._backend())
        if not members:
            raise ChainError("genesis has no validator with voting power")
        first = ValidatorSet.from_validators(members)
        second = next_validator_set(first, members)
        with self.chain.db.begin(write=True) as txn:
            write_validator_set(txn, self.chain.db, 1, first.encode())
            write_validator_set(txn, self.chain.db, 2, second.encode())

    def height(self) -> int:
        return self.chain.head.block_number

    def validators(self, height: int) -> ValidatorSet:
        """The set voting on ``height`` (stored up to ``self.height() + 2``).

        Raises
        ------
        ValueError
            For a height < 1 or one whose set is not known yet.
        """
        with self._lock:
            cached = self._sets.get(height)
            if cached is not None:
                return cached
            raw = self.chain.blocks.validator_set(height) if height >= 1 else None
            if raw is None:
                raise ValueError(f"no validator set for height {height} (head {self.height()})")
            vset = ValidatorSet.decode(raw)
            self._sets[height] = vset
            while len(self._sets) > 16:
                self._sets.popitem(last=False)
            return vset

    # ------------------------------------------------------------------ beacon

    def _own_commitment(self, key: ValidatorKey) -> tuple[bytes, BeaconCommitment | None]:
        """This key's owner and its commitment record as of the next block (head state)."""
        backend = self.chain._backend()
        state = StakingState(backend)
        owner = state.owner_of_pub_key(key.pub_key) or b""
        record = state.beacon_commitment(owner) if owner else None
        return owner, settled(record, self.height() + 1)

    def _build_onion(self, key: ValidatorKey, own: tuple[bytes, BeaconCommitment | None]) -> None:
        """Background: build the onion, log it, and warn if it does not open the live
        commitment read at construction (``own``)."""
        started = time.perf_counter()
        try:
            onion = onion_for(key, self.onion_index)
        except Exception:  # never kills the node: proposals needing a reveal then fail
            log.exception("building the beacon onion failed")
            self._onion_ready.set()
            return
        log.info(
            "beacon onion %d of validator 0x%s ready in %.1f s (tip 0x%s)",
            self.onion_index,
            key.pub_key.hex()[:16],
            time.perf_counter() - started,
            onion.tip.hex()[:16],
        )
        owner, record = own
        if not owner:
            log.info("beacon: validator key 0x%s is no candidate's key yet", key.pub_key.hex()[:16])
        elif record is None or not record.commitment or record.reveals_left <= 0:
            log.info(
                "beacon: 0x%s has no live commitment; its blocks take the fallback form",
                owner.hex(),
            )
        else:
            self._matches(onion, owner, record)
        self._onion = onion
        self._onion_ready.set()

    def _matches(self, onion: HashOnion, owner: bytes, record: BeaconCommitment) -> bytes | None:
        """The next reveal of ``record`` from ``onion``, or None (warned once per commitment)
        when the onion does not open it (another onion index, another key)."""
        step = next_reveal_step(record)
        if 1 <= step <= onion.length:
            reveal = onion.reveal(step)
            if keccak256(reveal) == record.commitment:
                return reveal
        if self._onion_warned != record.commitment:
            self._onion_warned = record.commitment
            log.warning(
                "beacon: the live commitment 0x%s of 0x%s (%d reveals left) is not from onion %d "
                "of this node's validator key: this validator cannot reveal, so its proposals "
                "are skipped (the round passes to the next proposer) until a commitment from "
                "this key is live. Start with the right onion index or send "
                "setBeaconCommitment(tip) with a new onion.",
                record.commitment.hex()[:16],
                owner.hex(),
                record.reveals_left,
                self.onion_index,
            )
        return None

    def onion(self, timeout: float | None = ONION_WAIT_SECONDS) -> HashOnion | None:
        """This node's onion, waiting up to ``timeout`` for the build (None: no key, not
        built in time, or the build failed)."""
        if self.validator_key is None or not self._onion_ready.wait(timeout):
            return None
        return self._onion

    def block_proposer(self, height: int, round: int) -> bytes:
        """Owner address of the proposer of ``round`` at ``height``: the block's ``p``.

        Raises
        ------
        ValueError
            The round is out of ``[0, MAX_PROPOSAL_ROUND]`` or the height's set is unknown.
        """
        if not 0 <= round <= MAX_PROPOSAL_ROUND:
            raise _Invalid(f"round {round} out of [0, {MAX_PROPOSAL_ROUND}]")
        return self.validators(height).proposer(round)

    def beacon_reveal(self, height: int, proposer: bytes) -> bytes | None:
        """The reveal block ``height`` proposed by ``proposer`` (owner address) must carry,
        from the head state (the state before the block): None when ``proposer`` has no live
        commitment (the fallback form, which any node can build).

        Raises
        ------
        BeaconUnavailable
            ``proposer`` has a live commitment but this node cannot open it.
        """
        state = StakingState(self.chain._backend())
        record = settled(state.beacon_commitment(proposer), height)
        if record is None or not record.commitment or record.reveals_left <= 0:
            return None
        key = self.validator_key
        if key is None:
            raise BeaconUnavailable(
                f"block {height}: proposer 0x{proposer.hex()} must reveal but this node holds "
                "no validator key"
            )
        candidate = state.get_candidate(proposer)
        if candidate is None or candidate.pub_key != key.pub_key:
            raise BeaconUnavailable(
                f"block {height}: this node's key is not the key of proposer 0x{proposer.hex()}"
            )
        onion = self.onion()
        if onion is None:
            raise BeaconUnavailable(f"block {height}: the beacon onion is not available")
        reveal = self._matches(onion, proposer, record)
        if reveal is None:
            raise BeaconUnavailable(
                f"block {height}: onion {self.onion_index} does not open the live commitment "
                f"0x{record.commitment.hex()[:16]} of 0x{proposer.hex()}"
            )
        return reveal

    # ------------------------------------------------------------------ propose

    def propose(self, height: int, round: int, last_commit: Commit | None) -> tuple[bytes, bytes]:
        """Build block ``height`` from the pool; it stays prepared (cached) until committed.

        Raises
        ------
        ValueError
            ``height`` is not the next block, or ``last_commit`` is missing (or given at 1).
        """
        with self._lock:
            head = self.chain.head
            if height != head.block_number + 1:
                raise ValueError(f"cannot propose {height} on head {head.block_number}")
            if (last_commit is None) != (height == 1):
                raise ValueError(f"block {height} needs the last commit iff height > 1")
            encoded_commit = b"" if last_commit is None else last_commit.encode()
            signers = self._signers(height, last_commit)
            evidence = self._evidence_for(height)
            proposer = self.block_proposer(height, round)
            self._drop_cached()
            reveal = self.beacon_reveal(height, proposer)  # the head state: before the block
            params = self.chain.params
            txs = self.mempool.select(params.block_gas_limit, self.max_block_txs)
            prepared = self.chain.prepare_block(
                txs,
                timestamp=max(head.timestamp + 1, int(self.clock())),
                coinbase=STAKING,
                extra_data=keccak256(encoded_commit) if encoded_commit else b"",
                max_txs=self.max_block_txs,
                signers=signers,
                evidence=tuple(DoubleSign(e.validator, e.height) for e in evidence),
                beacon=BeaconInput(proposer, reveal),  # mixHash = the beacon it computes
                on_state=staking_validators,
            )
            block = NetBlock(
                prepared.header,
                tuple(tx.raw for tx in prepared.transactions),
                encoded_commit,
                tuple(e.encode() for e in evidence),
                reveal or b"",
                round,
            )
            self._cached = _Cached(height, prepared.hash, block, prepared)
            return prepared.hash, block.encode()

    def _signers(self, height: int, last_commit: Commit | None) -> frozenset[bytes] | None:
        """Owners of the validators of ``height - 1`` whose signatures ``last_commit`` holds."""
        if last_commit is None:
            return None
        previous = self.validators(height - 1)
        return frozenset(a for a in last_commit.signers() if a in previous)

    def _evidence_for(self, height: int) -> list[DuplicateVoteEvidence]:
        """Pending evidence still valid in block ``height`` (at most ``MAX_BLOCK_EVIDENCE``)."""
        self._prune_evidence(height)
        chosen = []
        for evidence_hash, evidence in list(self._evidence.items()):
            if len(chosen) >= MAX_BLOCK_EVIDENCE:
                break
            if evidence.height >= height:
                continue  # of the height being decided: it goes into a later block
            try:
                self._verify_evidence(height, evidence, evidence_hash)
            except (InvalidEvidence, ValueError) as exc:
                log.info("dropping evidence 0x%s: %s", evidence_hash.hex()[:16], exc)
                del self._evidence[evidence_hash]
                continue
            chosen.append(evidence)
        return chosen

    def _verify_evidence(
        self, height: int, evidence: DuplicateVoteEvidence, evidence_hash: bytes
    ) -> None:
        """Raise ``InvalidEvidence`` unless ``evidence`` may go into block ``height``."""
        ev_height = evidence.height
        if not 1 <= ev_height < height:
            raise InvalidEvidence(f"evidence of height {ev_height} in block {height}")
        if height - ev_height > EVIDENCE_MAX_AGE:
            raise InvalidEvidence(f"evidence of height {ev_height} is too old for {height}")
        if self.chain.blocks.evidence_height(evidence_hash) is not None:
            raise InvalidEvidence("evidence was already included")
        evidence.verify(self.chain_id, self.validators(ev_height))

    def _prune_evidence(self, next_height: int) -> None:
        for evidence_hash, evidence in list(self._evidence.items()):
            if (
                next_height - evidence.height > EVIDENCE_MAX_AGE
                or self.chain.blocks.evidence_height(evidence_hash) is not None
            ):
                del self._evidence[evidence_hash]

    def add_evidence(self, evidence: DuplicateVoteEvidence) -> None:
        """Keep ``evidence`` (deduplicated by hash, at most ``MAX_PENDING_EVIDENCE``, oldest
        dropped first) until a block includes it or it is older than ``EVIDENCE_MAX_AGE``."""
        with self._lock:
            evidence_hash = evidence.hash()
            if evidence_hash in self._evidence:
                return
            # A double vote is usually seen during the height in progress (head + 1): it can go
            # into the block after that one, so check it against head + 2.
            try:
                self._verify_evidence(self.height() + 2, evidence, evidence_hash)
            except (InvalidEvidence, ValueError) as exc:
                log.info("ignoring evidence 0x%s: %s", evidence_hash.hex()[:16], exc)
                return
            self._evidence[evidence_hash] = evidence
            while len(self._evidence) > MAX_PENDING_EVIDENCE:
                self._evidence.popitem(last=False)

    def pending_evidence(self) -> list[DuplicateVoteEvidence]:
        with self._lock:
            return list(self._evidence.values())

    # ------------------------------------------------------------------ check

    def check(self, height: int, block: bytes) -> bytes | None:
        """The hash of ``block`` if it is a valid block ``height`` on the head, else None
        (logged). Never raises for bad input; an invalid block leaves no trace."""
        with self._lock:
            try:
                return self._check(height, block)
            except UpgradeRequired:
                raise  # not the block's fault: this node must stop
            except (ValueError, ChainError) as exc:  # every rule's error is one of these
                log.warning("block %d rejected: %s", height, exc)
                return None

    def _check(self, height: int, data: bytes) -> bytes:
        block = NetBlock.decode(data)
        block_hash = block.hash
        cached = self._cached
        if cached is not None and cached.height == height and cached.block == block:
            return block_hash
        txs, evidence, signers = self._validate(height, block)
        self._drop_cached()
        prepared = self._execute(block, txs, evidence, signers)
        differences = _header_differences(block.header, prepared.header)
        if differences:
            self.chain.discard_prepared(prepared)
            raise _Invalid(f"header differs from its execution: {', '.join(differences)}")
        self._cached = _Cached(height, block_hash, block, prepared)
        return block_hash

    def _validate(
        self, height: int, block: NetBlock
    ) -> tuple[list[Transaction], list[DuplicateVoteEvidence], frozenset[bytes] | None]:
        """Every check that needs no execution; the decoded transactions, evidence, signers."""
        head, head_hash = self.chain.head, self.chain.head_hash
        header = block.header
        if height != head.block_number + 1 or header.block_number != height:
            raise _Invalid(
                f"block number {header.block_number} for height {height} on head "
                f"{head.block_number}"
            )
        if header.parent_hash != head_hash:
            raise _Invalid(f"unknown parent 0x{header.parent_hash.hex()}")
        if header.timestamp <= head.timestamp:
            raise _Invalid(f"timestamp {header.timestamp} not after parent's {head.timestamp}")
        now = int(self.clock())
        if header.timestamp > now + MAX_FUTURE_SECONDS:
            raise _Invalid(f"timestamp {header.timestamp} is ahead of the clock ({now})")
        if header.coinbase != STAKING:
            raise _Invalid(f"coinbase 0x{header.coinbase.hex()} is not the staking module")
        if header.gas_limit != self.chain.params.block_gas_limit:
            raise _Invalid(f"gas limit {header.gas_limit}")
        if len(block.beacon_reveal) not in (0, 32):
            raise _Invalid(f"beacon reveal of {len(block.beacon_reveal)} bytes")
        self.block_proposer(height, block.round)  # the round names a proposer
        # The reveal itself and the mixHash are checked by executing the block: it opens with
        # advance_beacon, whose beacon the header's mixHash must equal.
        last_commit: Commit | None = None
        if height == 1:
            if block.last_commit or header.extra_data:
                raise _Invalid("block 1 carries a last commit")
        else:
            if not block.last_commit:
                raise _Invalid("missing last commit")
            last_commit = Commit.decode(block.last_commit)
            last_commit.verify(
                self.chain_id, self.validators(height - 1), height=height - 1, block_hash=head_hash
            )
            if header.extra_data != keccak256(block.last_commit):
                raise _Invalid("extraData is not the hash of the last commit")
        if len(block.evidence) > MAX_BLOCK_EVIDENCE:
            raise _Invalid(f"{len(block.evidence)} evidence entries (max {MAX_BLOCK_EVIDENCE})")
        evidence = []
        seen: set[bytes] = set()
        for raw in block.evidence:
            item = decode_evidence(raw)
            evidence_hash = item.hash()
            if evidence_hash in seen:
                raise _Invalid("duplicate evidence")
            seen.add(evidence_hash)
            self._verify_evidence(height, item, evidence_hash)
            evidence.append(item)
        txs = [self._decode_tx(raw) for raw in block.raw_txs]
        return txs, evidence, self._signers(height, last_commit)

    def _decode_tx(self, raw: bytes) -> Transaction:
        """Decode ``raw`` with this chain id; a pooled copy is reused (sender recovered once)."""
        pooled = self.mempool.get(keccak256(raw))
        if pooled is not None and pooled.raw == raw:
            return pooled
        return decode_transaction(raw, self.chain_id)

    def _execute(
        self,
        block: NetBlock,
        txs: list[Transaction],
        evidence: list[DuplicateVoteEvidence],
        signers: frozenset[bytes] | None,
    ) -> PreparedBlock:
        header = block.header
        proposer = self.block_proposer(header.block_number, block.round)
        return self.chain.prepare_block(
            txs,
            timestamp=header.timestamp,
            coinbase=header.coinbase,
            extra_data=header.extra_data,
            signers=signers,
            evidence=tuple(DoubleSign(e.validator, e.height) for e in evidence),
            beacon=BeaconInput(proposer, block.beacon_reveal or None),
            strict=True,
            on_state=staking_validators,
        )

    def _drop_cached(self) -> None:
        cached, self._cached = self._cached, None
        if cached is not None:
            self.chain.discard_prepared(cached.prepared)

    # ------------------------------------------------------------------ commit

    def commit(self, height: int, block: bytes, commit: Commit) -> None:
        """Persist ``block`` (executing it unless it is the cached prepared block) with its
        consensus data, the node's ``commit`` and the validator set of ``height + 2``.

        Raises
        ------
        Divergence
            The block does not execute to its header (another state root, a rejected
            transaction, ...): this node disagrees with the network and must stop.
        ValueError
            ``block`` is not block ``height`` on the head, or ``commit`` is not for it.
        """
        with self._lock:
            net = NetBlock.decode(block)
            block_hash = net.hash
            if commit.height != height or commit.block_hash != block_hash:
                raise ValueError(
                    f"commit for {commit.height}/0x{commit.block_hash.hex()} does not match "
                    f"block {height}/0x{block_hash.hex()}"
                )
            if height != self.height() + 1 or net.header.parent_hash != self.chain.head_hash:
                raise ValueError(f"block {height} does not extend head {self.height()}")
            cached = self._cached
            if cached is not None and cached.height == height and cached.block == net:
                prepared = cached.prepared
                self._cached = None
            else:
                self._drop_cached()
                prepared = self._execute_committed(height, net)
            members = prepared.extra
            assert isinstance(members, list)
            following = next_validator_set(self.validators(height + 1), members)
            evidence_hashes = [keccak256(raw) for raw in net.evidence]
            db = self.chain.db
            data = encode_consensus_data(
                net.last_commit, net.evidence, net.beacon_reveal, net.round
            )
            encoded_commit = commit.encode()

            def extra_writes(txn: object) -> None:
                write_consensus_data(txn, db, height, data, evidence_hashes)  # type: ignore[arg-type]
                write_seen_commit(txn, db, height, encoded_commit)  # type: ignore[arg-type]
                write_validator_set(txn, db, height + 2, following.encode())  # type: ignore[arg-type]

            built = self.chain.commit_prepared(prepared, extra_writes)
            self._sets[height + 2] = following
            for evidence_hash in evidence_hashes:
                self._evidence.pop(evidence_hash, None)
            self._prune_evidence(height + 1)
            update_pool(self.mempool, built)
            self.mempool.config = pool_config(self.mempool.config, self.chain.params)
            log.info(
                "committed block %d txs=%d gas=%d hash=0x%s",
                height,
                len(built.transactions),
                built.header.gas_used,
                block_hash.hex()[:16],
            )
            for listener in self.listeners:
                try:
                    listener(built)
                except Exception:  # a subscriber's failure must never stop consensus
                    log.exception("block listener failed")

    def _execute_committed(self, height: int, net: NetBlock) -> PreparedBlock:
        """Execute a block the network committed; ``Divergence`` if it does not match."""
        header = net.header
        try:
            txs = [self._decode_tx(raw) for raw in net.raw_txs]
            evidence = [decode_evidence(raw) for raw in net.evidence]
            last_commit = Commit.decode(net.last_commit) if net.last_commit else None
            signers = self._signers(height, last_commit)
            prepared = self._execute(net, txs, evidence, signers)
        except UpgradeRequired:
            raise
        except (ValueError, ChainError) as e:
            raise Divergence(f"block {height} (0x{net.hash.hex()}) does not execute: {e}") from e
        differences = _header_differences(header, prepared.header)
        if differences:
            self.chain.discard_prepared(prepared)
            raise Divergence(
                f"block {height} (0x{net.hash.hex()}) executes to state root "
                f"0x{prepared.header.state_root.hex()} but its header has "
                f"0x{header.state_root.hex()} (differing fields: {', '.join(differences)})"
            )
        return prepared

    # ------------------------------------------------------------------ sync

    def block_and_commit(self, height: int) -> tuple[bytes, Commit] | None:
        """Block ``height`` as network bytes and its canonical commit (the next block's
        ``last_commit`` if that block exists, else this node's seen commit)."""
        blocks = self.chain.blocks
        header = blocks.header(height) if height >= 1 else None
        data = blocks.consensus_data(height) if header is not None else None
        raw_txs = blocks.raw_body(height)
        if header is None or data is None or raw_txs is None:
            return None
        last_commit, evidence, reveal, round = decode_consensus_data(data)
        block = NetBlock(header, tuple(raw_txs), last_commit, evidence, reveal, round)
        following = blocks.consensus_data(height + 1)
        if following is not None:
            raw_commit = decode_consensus_data(following)[0]
        else:
            raw_commit = blocks.seen_commit(height)
            if raw_commit is None:
                return None
        return block.encode(), Commit.decode(raw_commit)


class _Invalid(ValueError):
    """A block breaking a rule checked here."""


def decode_evidence(data: bytes) -> DuplicateVoteEvidence:
    """Inverse of ``DuplicateVoteEvidence.encode`` (shapes only; ``verify`` checks the rest).

    Raises
    ------
    InvalidEvidence
        Bad RLP or votes that do not decode.
    """
    try:
        items = rlp.decode(data)
    except rlp.exceptions.DecodingError as e:
        raise InvalidEvidence(f"malformed evidence RLP: {e}") from e
    if not isinstance(items, list) or len(items) != 2:
        raise InvalidEvidence("evidence must be an RLP list of 2 votes")
    if not all(isinstance(x, bytes) for x in items):
        raise InvalidEvidence("evidence votes must be RLP strings")
    try:
        evidence = DuplicateVoteEvidence(decode_vote(items[0]), decode_vote(items[1]))
    except MalformedMessage as e:
        raise InvalidEvidence(f"malformed evidence vote: {e}") from e
    if evidence.encode() != data:
        raise InvalidEvidence("evidence encoding is not canonical")
    return evidence


def _header_differences(proposed: Header, executed: Header) -> list[str]:
    """Names of the header fields that differ."""
    if proposed == executed:
        return []
    return [
        name
        for name in type(proposed)._meta.field_names
        if getattr(proposed, name) != getattr(executed, name)
    ]
