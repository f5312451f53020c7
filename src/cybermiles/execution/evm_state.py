"""py-evm reading and writing our ``WorldState``: an ``AccountDatabaseAPI`` adapter.

py-evm's own ``AccountDB`` keeps state in a hexary trie and hashes on every write; this adapter
instead journals plain dict writes in ``WorldState`` and leaves the state root to the block
commit. Semantics follow ``eth.db.account.AccountDB``: writing to a missing account creates it,
``touch_account`` creates an empty one, ``get_storage(from_journal=False)`` returns the value at
the start of the transaction (EIP-2200 "original value"), and warm address/slot sets (EIP-2929)
revert with their call frame.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from functools import cache
from typing import Any, ClassVar, Protocol

from eth._utils.address import generate_contract_address
from eth.abc import AccountDatabaseAPI
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth.db.journal import get_next_checkpoint
from eth.exceptions import Halt
from eth.vm.code_stream import CodeStream
from eth.vm.execution_context import ExecutionContext
from eth.vm.forks.cancun.constants import BLOB_TX_TYPE
from eth.vm.forks.prague.computation import PragueComputation
from eth.vm.forks.prague.state import PragueState, PragueTransactionExecutor
from eth.vm.message import Message
from eth_utils import get_extended_debug_logger

from cybermiles.crypto.keccak import EMPTY_KECCAK
from cybermiles.modules import registry
from cybermiles.state.account import EMPTY_ACCOUNT, Account
from cybermiles.state.world import WorldState

from .interpreter import execute_code

UNCOMPUTED_ROOT = b"\x00" * 32


class WorldStateAccountDB(AccountDatabaseAPI):
    """Adapter from py-evm's account-database interface to ``WorldState``."""

    def __init__(self, world: WorldState) -> None:  # type: ignore[override]
        self.world = world
        self._original: dict[tuple[bytes, int], int] = {}
        self._warm: set[Any] = set()
        self._checkpoints: dict[int, int] = {}

    # -- roots are computed once per block by WorldState.commit_block, never per transaction.
    # py-evm's State.snapshot() pairs the root with the journal checkpoint and revert() writes it
    # back; a constant placeholder keeps that round trip harmless without hashing anything.
    @property
    def state_root(self) -> bytes:  # type: ignore[override]
        return UNCOMPUTED_ROOT

    @state_root.setter
    def state_root(self, value: bytes) -> None:
        if value != UNCOMPUTED_ROOT:
            raise NotImplementedError("the state root cannot be set on a live world state")

    def has_root(self, state_root: bytes) -> bool:
        return False

    def make_state_root(self) -> bytes:  # type: ignore[override]
        raise NotImplementedError("state roots are computed once per block by the block commit")

    def persist(self) -> Any:
        raise NotImplementedError("state is persisted by the block commit")

    # -- storage
    def get_storage(self, address: bytes, slot: int, from_journal: bool = True) -> int:  # type: ignore[override]
        if not from_journal:
            original = self._original.get((address, slot))
            if original is not None:
                return original
        return self.world.get_storage(address, slot)

    def set_storage(self, address: bytes, slot: int, value: int) -> None:  # type: ignore[override]
        key = (address, slot)
        if key not in self._original:
            self._original[key] = self.world.get_storage(address, slot)
        self.world.set_storage(address, slot, value)

    def delete_storage(self, address: bytes) -> None:  # type: ignore[override]
        self.world.wipe_storage(address)

    def is_storage_warm(self, address: bytes, slot: int) -> bool:  # type: ignore[override]
        return (address, slot) in self._warm

    def mark_storage_warm(self, address: bytes, slot: int) -> None:  # type: ignore[override]
        self._mark((address, slot))

    def is_address_warm(self, address: bytes) -> bool:  # type: ignore[override]
        return address in self._warm

    def mark_address_warm(self, address: bytes) -> None:  # type: ignore[override]
        self._mark(address)

    def _mark(self, key: Any) -> None:
        if key not in self._warm:
            self._warm.add(key)
            self.world.journal.append((4, lambda: self._warm.discard(key)))

    # -- account fields
    def _account(self, address: bytes) -> Account:
        account = self.world.get_account(address)
        return EMPTY_ACCOUNT if account is None else account

    def get_balance(self, address: bytes) -> int:  # type: ignore[override]
        return self._account(address).balance

    def set_balance(self, address: bytes, balance: int) -> None:  # type: ignore[override]
        a = self._account(address)
        self.world.set_account(address, Account(a.nonce, balance, a.storage_root, a.code_hash))

    def get_nonce(self, address: bytes) -> int:  # type: ignore[override]
        return self._account(address).nonce

    def set_nonce(self, address: bytes, nonce: int) -> None:  # type: ignore[override]
        a = self._account(address)
        self.world.set_account(address, Account(nonce, a.balance, a.storage_root, a.code_hash))

    def increment_nonce(self, address: bytes) -> None:  # type: ignore[override]
        self.set_nonce(address, self.get_nonce(address) + 1)

    def get_code(self, address: bytes) -> bytes:  # type: ignore[override]
        return self.world.get_code(self._account(address).code_hash)

    def set_code(self, address: bytes, code: bytes) -> None:  # type: ignore[override]
        code_hash = self.world.put_code(code)
        a = self._account(address)
        self.world.set_account(address, Account(a.nonce, a.balance, a.storage_root, code_hash))

    def get_code_hash(self, address: bytes) -> bytes:  # type: ignore[override]
        account = self.world.get_account(address)
        return EMPTY_KECCAK if account is None else account.code_hash

    def delete_code(self, address: bytes) -> None:  # type: ignore[override]
        a = self._account(address)
        self.world.set_account(address, Account(a.nonce, a.balance, a.storage_root, EMPTY_KECCAK))

    # -- accounts
    def account_has_code_or_nonce(self, address: bytes) -> bool:  # type: ignore[override]
        a = self._account(address)
        return a.nonce != 0 or a.code_hash != EMPTY_KECCAK

    def delete_account(self, address: bytes) -> None:  # type: ignore[override]
        self.world.set_account(address, None)

    def account_exists(self, address: bytes) -> bool:  # type: ignore[override]
        return self.world.get_account(address) is not None

    def touch_account(self, address: bytes) -> None:  # type: ignore[override]
        self.world.set_account(address, self._account(address))

    def account_is_empty(self, address: bytes) -> bool:  # type: ignore[override]
        return self._account(address).is_empty

    # -- journal. Checkpoint ids are keys in py-evm's transient storage journal too, whose own
    # root checkpoint comes from py-evm's process-wide counter: take ids from that counter (as
    # py-evm's AccountDB does) so they never collide, and map them to journal positions.
    def record(self) -> Any:
        checkpoint = get_next_checkpoint()
        self._checkpoints[checkpoint] = self.world.snapshot()
        return checkpoint

    def discard(self, checkpoint: Any) -> None:
        self.world.revert(self._checkpoints.pop(checkpoint))

    def commit(self, checkpoint: Any) -> None:
        """Keep the writes; their undo records stay until the transaction ends."""
        self._checkpoints.pop(checkpoint, None)

    def lock_changes(self) -> None:
        """Start a new transaction: forget original values, warm sets and undo records."""
        self._original.clear()
        self._warm.clear()
        self._checkpoints.clear()
        self.world.clear_journal()


class SharedJumpdestCodeStream(CodeStream):
    """py-evm's CodeStream whose JUMPDEST analysis (the positions found valid or invalid) is
    shared by every execution of the same code, instead of redone for each call frame.

    The analysis is a pure function of the code bytes, so sharing it cannot change results;
    at most ``MAX_SHARED_CODES`` codes are remembered (then the table starts over).
    """

    MAX_SHARED_CODES: ClassVar[int] = 4096
    _analyses: ClassVar[dict[bytes, tuple[set[int], set[int]]]] = {}

    def __init__(self, code_bytes: bytes) -> None:
        super().__init__(code_bytes)
        shared = self._analyses.get(code_bytes)
        if shared is None:
            if len(self._analyses) >= self.MAX_SHARED_CODES:
                self._analyses.clear()
            shared = self._analyses[code_bytes] = (set(), set())
        self.valid_positions, self.invalid_positions = shared


@cache
def chain_precompiles() -> dict[Any, Any]:
    """Prague's precompiles plus the native modules (``cybermiles.modules``)."""
    return {**PragueComputation.get_precompiles(), **registry.precompiles()}


class ChainComputation(PragueComputation):
    """Prague computation with the native modules as precompiles (warm from the start of every
    transaction, as EIP-2929 precompiles are) and the shared JUMPDEST analysis."""

    def __init__(self, state: Any, message: Any, transaction_context: Any) -> None:
        super().__init__(state, message, transaction_context)
        self.code = SharedJumpdestCodeStream(message.code)

    @classmethod
    def get_precompiles(cls) -> dict[Any, Any]:
        return chain_precompiles()

    @classmethod
    def apply_computation(
        cls,
        state: Any,
        message: Any,
        transaction_context: Any,
        parent_computation: Any = None,
    ) -> Any:
        """py-evm's ``BaseComputation.apply_computation`` with the bytecode run by our
        interpreter loop (:mod:`cybermiles.execution.interpreter`: the same opcodes, the simple
        ones faster). With py-evm's debug2 logging on, py-evm's own loop runs (it logs every
        opcode).
        """
        if cls.logger.show_debug2:
            return super().apply_computation(
                state, message, transaction_context, parent_computation
            )
        with cls(state, message, transaction_context) as computation:
            if computation.is_origin_computation:
                computation.contracts_created = []
                if message.is_create:
                    cls.consume_initcode_gas_cost(computation)
            if parent_computation is not None:
                computation.contracts_created = parent_computation.contracts_created
            if message.is_create:
                computation.contracts_created.append(message.storage_address)
            precompile = computation.precompiles.get(message.code_address)
            if precompile is not None:
                if not message.is_delegation:
                    precompile(computation)
                return computation
            with contextlib.suppress(Halt):
                execute_code(computation)
        return computation

    @property
    def precompiles(self) -> dict[Any, Any]:
        return chain_precompiles()


class ChainTransactionExecutor(PragueTransactionExecutor):
    """Prague's transaction executor, building the message without py-evm's debug2 line
    unless that logging is on: py-evm formats it eagerly, hex-encoding the whole contract code
    and hashing the call data on every transaction."""

    def build_evm_message(self, transaction: Any) -> Any:
        """``CancunTransactionExecutor.build_evm_message`` minus the debug line: charge the gas
        up front, bump the nonce, then the message (a create or a call, EIP-7702 aware)."""
        vm_state = self.vm_state
        if transaction.type_id == BLOB_TX_TYPE or vm_state.logger.show_debug2:
            return super().build_evm_message(transaction)
        sender = transaction.sender
        vm_state.delta_balance(sender, -transaction.gas * vm_state.get_gas_price(transaction))
        vm_state.increment_nonce(sender)
        refund = self.calc_message_refund(transaction)
        if transaction.to == CREATE_CONTRACT_ADDRESS:
            create_address = generate_contract_address(sender, vm_state.get_nonce(sender) - 1)
            data, code, is_delegation = b"", transaction.data, False
        else:
            create_address = None
            data = transaction.data
            code, delegation_address = self.get_code_at_address(transaction.to)
            is_delegation = delegation_address is not None
        return Message(
            gas=transaction.gas - transaction.intrinsic_gas,
            to=transaction.to,
            sender=sender,
            value=transaction.value,
            data=data,
            code=code,
            create_address=create_address,
            refund=refund,
            is_delegation=is_delegation,
        )


class ChainVMState(PragueState):
    """py-evm's Prague state over our world state (no py-evm database, no system contracts)."""

    computation_class = ChainComputation
    transaction_executor_class = ChainTransactionExecutor
    # py-evm's ``logger`` property builds the logger's name on every access (several times per
    # transaction); the logger it returns is this same object.
    logger = get_extended_debug_logger("eth.vm.state.ChainVMState")

    def __init__(self, account_db: WorldStateAccountDB, execution_context: Any) -> None:
        self._db = None
        self.execution_context = execution_context
        self._account_db = account_db


class BlockContext(Protocol):
    """The block fields the EVM reads (``BlockEnv`` for blocks, ``CallEnv`` for calls)."""

    number: int
    timestamp: int
    coinbase: bytes
    gas_limit: int
    prev_randao: bytes
    chain_id: int
    ancestor_hashes: Iterable[bytes]


def execution_context(env: BlockContext) -> ExecutionContext:
    """py-evm's execution context for ``env``: post-merge, base fee 0, no blobs."""
    return ExecutionContext(
        coinbase=env.coinbase,
        timestamp=env.timestamp,
        block_number=env.number,
        difficulty=0,
        mix_hash=env.prev_randao,
        gas_limit=env.gas_limit,
        prev_hashes=env.ancestor_hashes,
        chain_id=env.chain_id,
        base_fee_per_gas=0,
        excess_blob_gas=0,
    )
