"""Executing the transactions of one block on the world state.

Order of checks for each transaction (geth's state-transition pre-check, then our fee rules):
nonce, block gas left, tip <= fee cap, intrinsic gas (with the EIP-7623 floor), sender is an
EOA (EIP-3607; EIP-7702 delegations allowed), funds for ``gas * max_fee + value``, the free
transfer rules of ``fees.py``, initcode size (EIP-3860). A transaction failing any of them is
rejected with ``TxRejected`` and leaves no trace in the state.

Plain transfers between accounts without code take a fast path that reproduces exactly what the
EVM path does (fee to the recipient, EIP-161 clearing of touched empty accounts) without py-evm.
Everything else runs in py-evm's Prague VM over our state. The only Prague system operation kept
is EIP-2935 (parent block hash into the history contract's storage); EIP-4788 beacon roots and
EIP-7002/7251 requests have no meaning on this chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth.vm.forks.london.transactions import DynamicFeeTransaction
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.constants import (
    HISTORY_SERVE_WINDOW,
    HISTORY_STORAGE_ADDRESS,
    HISTORY_STORAGE_CONTRACT_CODE,
)
from eth.vm.forks.prague.transactions import PragueTransactionBuilder

from cybermiles.chain.params import Params
from cybermiles.chain.receipts import EMPTY_BLOOM, Log, Receipt, combine_blooms, logs_bloom
from cybermiles.chain.transactions import (
    DYNAMIC_FEE_TX_TYPE,
    Transaction,
    floor_data_gas,
    intrinsic_gas,
)
from cybermiles.crypto.keccak import EMPTY_KECCAK, keccak256
from cybermiles.execution.errors import NonceTooHigh, TxRejected
from cybermiles.execution.evm_state import ChainVMState, WorldStateAccountDB, execution_context
from cybermiles.execution.fees import (
    TX_GAS,
    effective_gas_price,
    is_plain_transfer_shape,
)
from cybermiles.execution.free_quota import FreeTxCounter
from cybermiles.state.account import Account
from cybermiles.state.world import WorldState

DELEGATION_PREFIX = b"\xef\x01\x00"  # EIP-7702 delegation designator
HISTORY_ADDRESS = bytes(HISTORY_STORAGE_ADDRESS)
HISTORY_CODE_HASH = keccak256(HISTORY_STORAGE_CONTRACT_CODE)


@dataclass(frozen=True, slots=True)
class BlockEnv:
    """What the EVM sees of the block being built."""

    number: int
    timestamp: int
    coinbase: bytes
    gas_limit: int
    parent_hash: bytes
    prev_randao: bytes
    chain_id: int
    ancestor_hashes: tuple[bytes, ...]  # parent first, at most 256 (BLOCKHASH)


def to_pyevm_transaction(tx: Transaction) -> object:
    """py-evm's object for ``tx`` with the already-recovered sender (no second recovery)."""
    if tx.type == DYNAMIC_FEE_TX_TYPE and not tx.access_list:
        # Performance only: build the object py-evm's decoder would return from the fields we
        # already decoded and validated, instead of RLP-decoding ``raw`` again (~70 us -> ~4 us
        # per tx). Same classes, field values and cached RLP as ``PragueTransactionBuilder.
        # decode(tx.raw)`` (tests/bench/test_bench_pyevm_tx.py checks it); other types and
        # access lists keep the decoder.
        inner = DynamicFeeTransaction(
            tx.chain_id,
            tx.nonce,
            tx.max_priority_fee_per_gas,
            tx.max_fee_per_gas,
            tx.gas,
            b"" if tx.to is None else tx.to,
            tx.value,
            tx.data,
            (),
            tx.v,
            tx.r,
            tx.s,
        )
        inner._cached_rlp = tx.raw[1:]  # what rlp.decode sets: the payload after the type byte
        evm_tx = PragueTransactionBuilder.typed_transaction(DYNAMIC_FEE_TX_TYPE, inner)
    else:
        evm_tx = PragueTransactionBuilder.decode(tx.raw)
    evm_tx.__dict__["sender"] = tx.sender  # overrides the cached_property
    return evm_tx


class BlockExecutor:
    """Applies transactions one by one and collects receipts; the caller commits the state."""

    def __init__(
        self,
        world: WorldState,
        params: Params,
        env: BlockEnv,
        free: FreeTxCounter,
        *,
        vm_state_class: type[ChainVMState] = ChainVMState,  # dev: a computation without limits
    ) -> None:
        self.world = world
        self.params = params
        self.env = env
        self.free = free
        self.transactions: list[Transaction] = []
        self.receipts: list[Receipt] = []
        self.gas_used = 0
        self.fees = 0  # paid to the coinbase by this block's transactions
        self._account_db = WorldStateAccountDB(world)
        self._vm_state = vm_state_class(
            self._account_db,
            execution_context(env),
        )
        self._store_parent_hash()

    def _store_parent_hash(self) -> None:
        """EIP-2935: the parent hash goes into the history contract's ring buffer."""
        account = self.world.get_account(HISTORY_ADDRESS)
        if self.env.number > 0 and account is not None and account.code_hash == HISTORY_CODE_HASH:
            self.world.set_storage(
                HISTORY_ADDRESS,
                (self.env.number - 1) % HISTORY_SERVE_WINDOW,
                int.from_bytes(self.env.parent_hash, "big"),
            )
            self.world.clear_journal()

    # ------------------------------------------------------------------ validation

    def check(self, tx: Transaction) -> Account:
        """Raise ``TxRejected`` unless ``tx`` can be applied now; return the sender account."""
        sender = self.world.get_account_or_empty(tx.sender)
        if tx.nonce < sender.nonce:
            raise TxRejected("nonce too low")
        if tx.nonce > sender.nonce:
            raise NonceTooHigh("nonce too high")
        if tx.gas > self.env.gas_limit - self.gas_used:
            raise TxRejected("gas limit reached")
        if tx.max_priority_fee_per_gas > tx.max_fee_per_gas:
            raise TxRejected("max priority fee per gas higher than max fee per gas")
        if tx.gas < max(intrinsic_gas(tx), floor_data_gas(tx)):
            raise TxRejected("intrinsic gas too low")
        if sender.has_code and not self._is_delegation(sender.code_hash):
            raise TxRejected("sender not an eoa")
        if sender.balance < tx.gas * tx.max_fee_per_gas + tx.value:
            raise TxRejected("insufficient funds for gas * price + value")
        if effective_gas_price(tx) < self.params.min_gas_price:
            self._check_free_transfer(tx)
        if tx.to is None and len(tx.data) > 2 * self.params.max_code_size:
            raise TxRejected("max initcode size exceeded")
        return sender

    def _is_delegation(self, code_hash: bytes) -> bool:
        code = self.world.get_code(code_hash)
        return len(code) == 23 and code.startswith(DELEGATION_PREFIX)

    def _check_free_transfer(self, tx: Transaction) -> None:
        if not is_plain_transfer_shape(tx) or self._recipient_has_code(tx):
            raise TxRejected("transaction underpriced")
        if self.free.used(tx.sender) >= self.params.free_tx_quota:
            raise TxRejected("transaction underpriced: free transfer quota used up for this window")

    def _recipient_has_code(self, tx: Transaction) -> bool:
        assert tx.to is not None
        recipient = self.world.get_account(tx.to)
        return recipient is not None and recipient.code_hash != EMPTY_KECCAK

    # ------------------------------------------------------------------ application

    def apply(self, tx: Transaction) -> Receipt:
        """Validate and execute ``tx``, append its receipt and return it."""
        sender = self.check(tx)
        price = effective_gas_price(tx)
        if price < self.params.min_gas_price:
            self.free.consume(tx.sender)
        if is_plain_transfer_shape(tx) and not self._recipient_has_code(tx):
            status, gas, logs = self._apply_plain_transfer(tx, sender, price)
        else:
            status, gas, logs = self._apply_evm(tx)
        self.world.clear_journal()
        self.gas_used += gas
        self.fees += gas * price  # the base fee is 0: the whole effective price is the tip
        receipt = Receipt(
            tx.type, status, self.gas_used, logs, logs_bloom(logs) if logs else EMPTY_BLOOM
        )
        self.transactions.append(tx)
        self.receipts.append(receipt)
        return receipt

    def _apply_plain_transfer(
        self, tx: Transaction, sender: Account, price: int
    ) -> tuple[int, int, tuple[Log, ...]]:
        """What the EVM does for a value transfer to a code-less account, without the EVM."""
        world = self.world
        assert tx.to is not None
        fee = TX_GAS * price
        world.set_account(
            tx.sender,
            Account(
                sender.nonce + 1,
                sender.balance - tx.value - fee,
                sender.storage_root,
                sender.code_hash,
            ),
        )
        recipient = world.get_account(tx.to)
        if tx.value:
            r = recipient or Account()
            world.set_account(
                tx.to, Account(r.nonce, r.balance + tx.value, r.storage_root, r.code_hash)
            )
        elif recipient is not None and recipient.is_empty:
            world.set_account(tx.to, None)  # EIP-161: touched and empty
        self._pay_fee(fee)
        return 1, TX_GAS, ()

    def _pay_fee(self, fee: int) -> None:
        coinbase = self.env.coinbase
        account = self.world.get_account(coinbase)
        if fee:
            a = account or Account()
            self.world.set_account(
                coinbase, Account(a.nonce, a.balance + fee, a.storage_root, a.code_hash)
            )
        elif account is not None and account.is_empty:
            self.world.set_account(coinbase, None)  # EIP-161: the coinbase is always touched

    def _apply_evm(self, tx: Transaction) -> tuple[int, int, tuple[Log, ...]]:
        self._account_db.lock_changes()
        evm_tx = to_pyevm_transaction(tx)
        executor = self._vm_state.get_transaction_executor()
        message = executor.build_evm_message(evm_tx)
        computation = executor.build_computation(message, evm_tx)
        computation = executor.finalize_computation(evm_tx, computation)
        self._vm_state.clear_transient_storage()
        gas = PragueVM.finalize_gas_used(evm_tx, computation)
        logs = tuple(
            Log(address, tuple(t.to_bytes(32, "big") for t in topics), data)
            for address, topics, data in computation.get_log_entries()
        )
        return (0 if computation.is_error else 1), gas, logs

    def bloom(self) -> bytes:
        return combine_blooms(r.bloom for r in self.receipts)
