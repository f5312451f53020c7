"""The chain of one node: genesis, block building and committing, and state reads.

Every block commits in ONE LMDB write transaction holding the state changes, the reverse diffs,
the header, body, receipts, transaction index, free-transfer counts and the head pointer. A crash
therefore leaves either the whole block or none of it; on restart the in-memory tries are rebuilt
from the flat state and their root is checked against the head header.

A block can also be executed without being persisted (``prepare_block``: header complete,
state root computed in the in-memory tries, LMDB writes collected) and then committed
(``commit_prepared``, the same single write transaction) or discarded (``discard_prepared``,
which undoes the trie updates exactly). BFT consensus (``node.consensus_app``) uses that to
check a proposal once and commit it without executing it again; the dev producer's
``build_block`` prepares and commits at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lmdb

import cybermiles
from cybermiles.chain.database import Database
from cybermiles.chain.errors import ChainError
from cybermiles.chain.genesis import Genesis
from cybermiles.chain.header import EMPTY_OMMERS_HASH, ZERO_HASH, Header, header_hash, make_header
from cybermiles.chain.params import Params
from cybermiles.chain.receipts import EMPTY_BLOOM, Receipt
from cybermiles.chain.store import BlockStore, write_block
from cybermiles.chain.transactions import Transaction
from cybermiles.consensus.beacon import GENESIS_BEACON
from cybermiles.crypto.keccak import keccak256
from cybermiles.execution.block import BlockEnv, BlockExecutor
from cybermiles.execution.code_size import UnlimitedCodeVMState
from cybermiles.execution.errors import TxRejected
from cybermiles.execution.evm_state import WorldStateAccountDB
from cybermiles.execution.fees import free_tx_window
from cybermiles.execution.free_quota import FreeTxCounter
from cybermiles.modules import lifecycle as modules
from cybermiles.modules.addresses import MODULE_RANGE, STAKING
from cybermiles.modules.framework.block import BlockInfo, DoubleSign
from cybermiles.modules.governance.upgrade import UpgradePlan, pending_upgrade
from cybermiles.modules.params import read_params
from cybermiles.modules.staking.beacon_commitments import BeaconError, advance_beacon
from cybermiles.node.dev import rewind_tables, unlimited_code_params
from cybermiles.state.account import Account
from cybermiles.state.trie import BLANK_ROOT, ordered_trie_root
from cybermiles.state.view import StateView
from cybermiles.state.world import PreparedState, WorldState


def genesis_digest(genesis: Genesis) -> bytes:
    """keccak256 of the canonical JSON of the whole genesis (stored at init, checked at open)."""
    text = json.dumps(genesis.to_json(), sort_keys=True, separators=(",", ":"))
    return keccak256(text.encode())


ANCESTOR_WINDOW = 256  # BLOCKHASH reaches the 256 most recent blocks

StateEdit = Callable[[WorldState], None]  # dev mode: state changes opening a block (node.dev)


class GenesisMismatch(ChainError):
    """The data directory holds a chain with another genesis."""


class StateRootMismatch(ChainError):
    """The rebuilt state does not match the head header: the data directory is damaged."""


class UpgradeRequired(ChainError):
    """Governance scheduled an upgrade to another version at or below the next block."""

    def __init__(self, plan: UpgradePlan, running: str) -> None:
        super().__init__(
            f"governance upgrade {plan.name!r} to version {plan.version} takes effect at block "
            f"{plan.height}; this node runs version {running} and stops before that block. "
            f"Install cybermiles {plan.version} and start the node again."
        )
        self.plan = plan


class InvalidBlock(ChainError):
    """A block from the network that cannot execute whole (a transaction is rejected)."""


@dataclass(frozen=True, slots=True)
class BeaconInput:
    """What a BFT block says about its random beacon: the owner address of its proposer and
    its reveal (None: the proposer has no live commitment). See ``docs/consensus.md``."""

    proposer: bytes
    reveal: bytes | None


@dataclass(frozen=True, slots=True)
class BuiltBlock:
    header: Header
    hash: bytes
    transactions: list[Transaction]
    receipts: list[Receipt]
    rejected: list[tuple[Transaction, TxRejected]]
    timings: dict[str, float]  # seconds: execute, state_root, commit (for logs and benchmarks)


@dataclass(slots=True)
class PreparedBlock:
    """An executed block, its header complete, not persisted (``Blockchain.prepare_block``)."""

    header: Header
    hash: bytes
    transactions: list[Transaction]
    receipts: list[Receipt]
    rejected: list[tuple[Transaction, TxRejected]]
    timings: dict[str, float]
    encoded_receipts: list[bytes]
    state: PreparedState
    free: FreeTxCounter
    params: Params  # in force for the block after this one
    extra: object = None  # what ``on_state`` returned


class Blockchain:
    """A node's chain; one thread (the block producer) writes, any thread reads."""

    def __init__(self, data_dir: str | Path, genesis: Genesis, *, archive: bool = False) -> None:
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.db = Database(Path(data_dir))
        self.blocks = BlockStore(self.db)
        self.world = WorldState(self.db, history_blocks=None if archive else 128)
        self._write_lock = threading.Lock()
        self.unlimited_contract_size = False  # dev mode only: no EIP-170 / EIP-3860 limits
        # Performance only: ancestor_hashes() of the head (ANCESTOR_WINDOW hashes, newest first),
        # extended by one hash per committed block instead of re-reading 256 headers per block.
        self._ancestors: tuple[bytes, ...] = ()
        if self.blocks.head_number() is None:
            self._init_genesis()
        self.head: Header = self._load_head()
        self.head_hash = header_hash(self.head)
        self._check_genesis()
        self._check_state_root()
        self.params = read_params(self._backend())  # in force for the next block

    def _backend(self) -> WorldStateAccountDB:
        """The world state as the modules see it."""
        return WorldStateAccountDB(self.world)

    # ------------------------------------------------------------------ opening

    def _genesis_header(self, state_root: bytes) -> Header:
        g = self.genesis
        return make_header(
            block_number=0,
            gas_limit=g.params.block_gas_limit,
            timestamp=g.timestamp,
            parent_hash=ZERO_HASH,
            uncles_hash=EMPTY_OMMERS_HASH,
            state_root=state_root,
            extra_data=g.extra_data,
        )

    def _init_genesis(self) -> None:
        for address in self.genesis.alloc:
            if int.from_bytes(address, "big") in MODULE_RANGE:
                raise ChainError(f"alloc: 0x{address.hex()} is reserved for native modules")
        self.world.load_genesis(
            (address, Account(a.nonce, a.balance), a.storage, a.code)
            for address, a in sorted(self.genesis.alloc.items())
        )
        self.world.load_genesis(
            (address, Account(nonce), {}, code)
            for address, nonce, code in modules.genesis_accounts()
        )
        try:
            modules.init_genesis(self._backend(), self.genesis)
        except ValueError as exc:
            raise ChainError(f"genesis validators: {exc}") from exc
        self.world.clear_journal()
        with self.db.begin(write=True) as txn:
            root = self.world.commit_block(txn, 0)
            header = self._genesis_header(root)
            block_hash = write_block(txn, self.db, header, [], [])
            txn.put(b"genesis", block_hash, db=self.db[b"meta"])
            txn.put(b"genesis_spec", genesis_digest(self.genesis), db=self.db[b"meta"])

    def _load_head(self) -> Header:
        number = self.blocks.head_number()
        assert number is not None
        header = self.blocks.header(number)
        if header is None:
            raise StateRootMismatch(f"head block {number} has no header")
        return header

    def _check_genesis(self) -> None:
        with self.db.begin() as txn:
            stored = txn.get(b"genesis", db=self.db[b"meta"])
            stored_spec = txn.get(b"genesis_spec", db=self.db[b"meta"])
        header0 = self.blocks.header(0)
        assert header0 is not None
        expected = header_hash(self._genesis_header(header0.state_root))
        # The header alone misses the chain id, the params, the validators and (since the stored
        # state root is reused above) the alloc: compare a digest of the whole genesis too.
        spec_differs = stored_spec is not None and stored_spec != genesis_digest(self.genesis)
        if stored != expected or header0.timestamp != self.genesis.timestamp or spec_differs:
            raise GenesisMismatch(
                "the data directory holds a chain with a different genesis; use another --home "
                "or remove its data directory"
            )

    def _check_state_root(self) -> None:
        root = self.world.state_root()
        if root != self.head.state_root:
            raise StateRootMismatch(
                f"state root 0x{root.hex()} does not match head block {self.head.block_number} "
                f"(0x{self.head.state_root.hex()})"
            )

    # ------------------------------------------------------------------ building

    def ancestor_hashes(self, limit: int = ANCESTOR_WINDOW) -> tuple[bytes, ...]:
        """Hashes of the head and its ancestors, newest first (for BLOCKHASH)."""
        cached = self._ancestors
        if 1 <= limit <= ANCESTOR_WINDOW and cached and cached[0] == self.head_hash:
            return cached[:limit]  # same value as the loop below (~37 ms at 256 headers)
        hashes = [self.head_hash]
        number = self.head.block_number - 1
        while number >= 0 and len(hashes) < limit:
            header = self.blocks.header(number)
            assert header is not None
            hashes.append(header_hash(header))
            number -= 1
        if limit == ANCESTOR_WINDOW:
            self._ancestors = tuple(hashes)
        return tuple(hashes)

    def next_timestamp(self, wanted: int) -> int:
        """Block timestamps strictly increase."""
        return max(wanted, self.head.timestamp + 1)

    def build_block(
        self,
        txs: Iterable[Transaction],
        *,
        timestamp: int,
        coinbase: bytes,
        prev_randao: bytes = ZERO_HASH,
        extra_data: bytes = b"",
        max_txs: int | None = None,
        state_edit: StateEdit | None = None,
        signers: frozenset[bytes] | None = None,
        evidence: tuple[DoubleSign, ...] = (),
    ) -> BuiltBlock:
        """Execute ``txs`` in order on the head (skipping invalid ones), run the modules' end
        of block (``modules.lifecycle``) and commit the block.

        ``state_edit`` (dev mode only, ``node.dev``) writes to the world state at the start of
        the block, before any transaction; the block's state root covers it. ``signers`` (the
        candidates whose signatures the previous commit holds; None: all) and ``evidence`` come
        from consensus. Raises ``UpgradeRequired`` instead of building a block that a passed
        upgrade proposal reserves for another version.

        The same as :meth:`prepare_block` then :meth:`commit_prepared` under one lock hold,
        without the undo journal (the block always commits).
        """
        with self._write_lock:
            prepared = self._prepare(
                txs,
                timestamp=timestamp,
                coinbase=coinbase,
                prev_randao=prev_randao,
                extra_data=extra_data,
                max_txs=max_txs,
                state_edit=state_edit,
                signers=signers,
                evidence=evidence,
                undo=False,
            )
            return self._commit_prepared(prepared, None)

    def prepare_block(
        self,
        txs: Iterable[Transaction],
        *,
        timestamp: int,
        coinbase: bytes,
        prev_randao: bytes = ZERO_HASH,
        extra_data: bytes = b"",
        max_txs: int | None = None,
        signers: frozenset[bytes] | None = None,
        evidence: tuple[DoubleSign, ...] = (),
        beacon: BeaconInput | None = None,
        strict: bool = False,
        on_state: Callable[[WorldStateAccountDB], object] | None = None,
    ) -> PreparedBlock:
        """Execute a block on the head and compute its whole header without persisting it.

        The result is committed with :meth:`commit_prepared` (one LMDB write transaction) or
        dropped with :meth:`discard_prepared`, which leaves the state and the in-memory tries
        exactly as before. At most one block is prepared at a time. With ``strict`` a
        transaction the executor rejects raises ``InvalidBlock`` (a block from the network
        must execute whole) instead of being skipped. ``on_state(backend)`` runs on the state
        after the block (its end included) and its result is kept as ``PreparedBlock.extra``.

        ``beacon`` (BFT consensus): the block's proposer and reveal. The block then opens with
        ``advance_beacon`` (before any transaction: the proposer's commitment is consumed in
        the block's state) and the beacon it returns is the header's ``mixHash``, the EVM's
        PREVRANDAO and the end-of-block election's seed; ``prev_randao`` is ignored. A reveal
        that does not fit the rules raises ``InvalidBlock`` and leaves nothing behind.
        """
        with self._write_lock:
            return self._prepare(
                txs,
                timestamp=timestamp,
                coinbase=coinbase,
                prev_randao=prev_randao,
                extra_data=extra_data,
                max_txs=max_txs,
                signers=signers,
                evidence=evidence,
                beacon=beacon,
                strict=strict,
                on_state=on_state,
                undo=True,
            )

    def commit_prepared(
        self,
        prepared: PreparedBlock,
        extra_writes: Callable[[lmdb.Transaction], None] | None = None,
    ) -> BuiltBlock:
        """Persist ``prepared`` (it must be the prepared block on the current head) in one
        LMDB write transaction; ``extra_writes(txn)`` adds the caller's records (consensus
        data) to the same transaction."""
        with self._write_lock:
            return self._commit_prepared(prepared, extra_writes)

    def discard_prepared(self, prepared: PreparedBlock) -> None:
        """Drop ``prepared``: state, tries and head are exactly as before it was prepared."""
        with self._write_lock:
            if self.world.prepared is prepared.state:
                self.world.discard_prepared(prepared.state)

    @property
    def prepared(self) -> PreparedState | None:
        """The world state's prepared (executed, not persisted) block, if any."""
        return self.world.prepared

    def _prepare(
        self,
        txs: Iterable[Transaction],
        *,
        timestamp: int,
        coinbase: bytes,
        prev_randao: bytes,
        extra_data: bytes,
        max_txs: int | None,
        signers: frozenset[bytes] | None,
        evidence: tuple[DoubleSign, ...],
        undo: bool,
        state_edit: StateEdit | None = None,
        beacon: BeaconInput | None = None,
        strict: bool = False,
        on_state: Callable[[WorldStateAccountDB], object] | None = None,
    ) -> PreparedBlock:
        if self.world.prepared is not None:
            raise ChainError(
                f"block {self.world.prepared.number} is prepared: commit or discard it first"
            )
        parent = self.head
        number = parent.block_number + 1
        self.check_upgrade(number)
        beacon_value = b""  # none: the election falls back to the parent-hash placeholder
        if beacon is not None:
            beacon_value = prev_randao = self._advance_beacon(parent, number, beacon)
        env = BlockEnv(
            number=number,
            timestamp=self.next_timestamp(timestamp),
            coinbase=coinbase,
            gas_limit=self.params.block_gas_limit,
            parent_hash=self.head_hash,
            prev_randao=prev_randao,
            chain_id=self.chain_id,
            ancestor_hashes=self.ancestor_hashes(),
        )
        free = FreeTxCounter(self.db, free_tx_window(number, self.params))
        executor = self._executor(env, free)
        if state_edit is not None:
            try:
                state_edit(self.world)
            except BaseException:
                self.world.discard_block()
                raise
            self.world.clear_journal()
        rejected: list[tuple[Transaction, TxRejected]] = []
        started = time.perf_counter()
        try:
            for tx in txs:
                if max_txs is not None and len(executor.transactions) >= max_txs:
                    break
                try:
                    executor.apply(tx)
                except TxRejected as exc:
                    if strict:
                        raise InvalidBlock(
                            f"block {number}: transaction 0x{tx.hash.hex()} is invalid: {exc}"
                        ) from exc
                    rejected.append((tx, exc))
        except BaseException:
            self.world.discard_block()
            raise
        executed = time.perf_counter()
        info = BlockInfo(
            number=number,
            timestamp=env.timestamp,
            parent_hash=env.parent_hash,
            fees=executor.fees if coinbase == STAKING else 0,
            signers=signers,
            evidence=evidence,
            beacon=beacon_value,
        )
        try:
            modules.end_block(self._backend(), info)
            params = read_params(self._backend())  # in force for the block after this one
            extra = None if on_state is None else on_state(self._backend())
        except BaseException:
            self.world.discard_block()
            raise
        self.world.clear_journal()
        ended = time.perf_counter()
        timings: dict[str, float] = {"execute": executed - started, "end_block": ended - executed}

        txs_done, receipts = executor.transactions, executor.receipts
        state = self.world.prepare_block(number, undo=undo)
        timings["state_root"] = time.perf_counter() - ended
        try:
            started = time.perf_counter()
            encoded_receipts = [r.encode() for r in receipts]  # once: root and storage
            tx_root = ordered_trie_root([tx.raw for tx in txs_done]) if txs_done else BLANK_ROOT
            receipt_root = ordered_trie_root(encoded_receipts) if receipts else BLANK_ROOT
            timings["tx_receipt_roots"] = time.perf_counter() - started
            header = make_header(
                block_number=env.number,
                gas_limit=env.gas_limit,
                timestamp=env.timestamp,
                parent_hash=env.parent_hash,
                uncles_hash=EMPTY_OMMERS_HASH,
                coinbase=env.coinbase,
                state_root=state.root,
                transaction_root=tx_root,
                receipt_root=receipt_root,
                bloom=int.from_bytes(executor.bloom() if receipts else EMPTY_BLOOM, "big"),
                gas_used=executor.gas_used,
                extra_data=extra_data,
                mix_hash=env.prev_randao,
            )
        except BaseException:
            self._drop_prepared(state)
            raise
        return PreparedBlock(
            header=header,
            hash=header_hash(header),
            transactions=txs_done,
            receipts=receipts,
            rejected=rejected,
            timings=timings,
            encoded_receipts=encoded_receipts,
            state=state,
            free=free,
            params=params,
            extra=extra,
        )

    def _advance_beacon(self, parent: Header, number: int, beacon: BeaconInput) -> bytes:
        """Open block ``number`` with the beacon step: consume the proposer's reveal in the
        (open) block state and return ``beacon_number``; ``InvalidBlock`` if it breaks a rule."""
        prev = GENESIS_BEACON if number == 1 else parent.mix_hash
        try:
            value = advance_beacon(self._backend(), prev, beacon.proposer, beacon.reveal, number)
        except (BeaconError, ValueError) as exc:
            self.world.discard_block()
            reason = str(exc) if isinstance(exc, BeaconError) else f"block {number}: {exc}"
            raise InvalidBlock(f"invalid beacon: {reason}") from exc
        except BaseException:
            self.world.discard_block()
            raise
        self.world.clear_journal()
        return value

    def _drop_prepared(self, state: PreparedState) -> None:
        if state.journal is not None:
            self.world.discard_prepared(state)
        else:  # no undo journal: rebuild the tries from the committed state
            self.world = WorldState(self.db, history_blocks=self.world.history_blocks)

    def _commit_prepared(
        self,
        prepared: PreparedBlock,
        extra_writes: Callable[[lmdb.Transaction], None] | None,
    ) -> BuiltBlock:
        if self.world.prepared is not prepared.state:
            raise ChainError(f"block {prepared.header.block_number} is not the prepared block")
        header = prepared.header
        if header.parent_hash != self.head_hash:
            raise ChainError(f"prepared block {header.block_number} is not on the head")
        timings = prepared.timings
        try:
            started = time.perf_counter()
            with self.db.begin(write=True) as txn:
                self.world.write_block(txn, prepared.state)
                prepared.free.write(txn)
                block_hash = write_block(
                    txn, self.db, header, prepared.transactions, prepared.encoded_receipts
                )
                if extra_writes is not None:
                    extra_writes(txn)
            timings["commit"] = time.perf_counter() - started  # includes the LMDB sync
        except BaseException:
            # The in-memory tries and caches may be half updated: rebuild from the committed
            # state (the transaction was aborted, so that is the parent's).
            self.world = WorldState(self.db, history_blocks=self.world.history_blocks)
            raise
        self.head, self.head_hash = header, block_hash
        parents = self._ancestors
        if parents and parents[0] == header.parent_hash:
            self._ancestors = (block_hash, *parents[: ANCESTOR_WINDOW - 1])
        self.params = prepared.params
        return BuiltBlock(
            header,
            block_hash,
            prepared.transactions,
            prepared.receipts,
            prepared.rejected,
            timings,
        )

    def check_upgrade(self, number: int) -> None:
        """Raise ``UpgradeRequired`` if a passed upgrade to another version is due by ``number``."""
        plan = pending_upgrade(self._backend())
        if plan is not None and number >= plan.height and plan.version != cybermiles.__version__:
            raise UpgradeRequired(plan, cybermiles.__version__)

    def _executor(self, env: BlockEnv, free: FreeTxCounter) -> BlockExecutor:
        if self.unlimited_contract_size:
            return BlockExecutor(
                self.world,
                unlimited_code_params(self.params),
                env,
                free,
                vm_state_class=UnlimitedCodeVMState,
            )
        return BlockExecutor(self.world, self.params, env, free)

    # ------------------------------------------------------------------ reading

    @contextmanager
    def state_at(self, number: int | None = None) -> Iterator[StateView]:
        """A consistent read-only view of the state after block ``number`` (default: head)."""
        with self.db.begin() as txn:
            head = int.from_bytes(txn.get(b"head", db=self.db[b"meta"]), "big")
            yield StateView(self.db, txn, head if number is None else number, head)

    def prove(
        self, address: bytes, slots: Iterable[int]
    ) -> tuple[int, list[bytes], Account | None, list[tuple[int, list[bytes]]]]:
        """EIP-1186 proofs of ``address`` and its ``slots`` in the head state.

        Returns ``(head_number, account_proof, account, [(value, proof) per slot])``. The
        account proof is against the head header's state root, the storage proofs against the
        account's storage root. Only the head has in-memory tries; the write lock keeps the
        producer out, so the proofs come from one committed head, between blocks.
        """
        with self._write_lock:
            world = self.world
            account, account_proof = world.prove_account(address)
            storage = [world.prove_storage(address, slot) for slot in slots]
            return self.head.block_number, account_proof, account, storage

    def free_txs_used(self, sender: bytes) -> int:
        """Free transfers ``sender`` used in the window of the next block."""
        window = free_tx_window(self.head.block_number + 1, self.params)
        return FreeTxCounter(self.db, window).committed(sender)

    # ------------------------------------------------------------------ dev mode

    def rewind_to(self, number: int) -> None:
        """Dev mode only: drop every block above ``number`` and restore its state.

        One LMDB write transaction (``node.dev.rewind_tables``); then the in-memory tries and
        caches are dropped and the state root is checked against the new head.
        """
        with self._write_lock:
            with self.db.begin(write=True) as txn:
                rewind_tables(
                    txn,
                    self.db,
                    head=self.head.block_number,
                    target=number,
                    chain_id=self.chain_id,
                    params=self.params,
                )
            self.world = WorldState(self.db, history_blocks=self.world.history_blocks)
            self._ancestors = ()
            self.head = self._load_head()
            self.head_hash = header_hash(self.head)
            self._check_state_root()
            self.params = read_params(self._backend())

    def close(self) -> None:
        self.db.close()
