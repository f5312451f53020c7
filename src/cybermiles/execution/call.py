"""Simulated transactions: eth_call, eth_estimateGas and eth_createAccessList (geth semantics).

A call runs through py-evm exactly like a block transaction (the same executor seam as
``BlockExecutor._apply_evm``: ``build_evm_message`` / ``build_computation`` /
``finalize_computation``), so intrinsic gas, EIP-2929 pre-warming (sender, recipient or created
address, precompiles, coinbase per EIP-3651, access list), refunds and the EIP-7623 floor are
those of a real transaction. It runs over an :class:`~cybermiles.state.overlay.OverlayState`
of the requested height and is never committed. Rules, as geth's ``DoCall``:

* No signature; ``from`` defaults to the zero address. The nonce is not checked: the sender's
  current nonce is used unless the request gives one (it then sets the sender's nonce, which
  matters for the address a creation gets). EIP-3607 (sender has code) is not checked.
* Gas: the request's ``gas``, else the block gas limit; either is capped at ``gas_cap``
  (``RPC_GAS_CAP``, 50M). Base fee 0. ``gasPrice`` (legacy) or ``maxFeePerGas`` /
  ``maxPriorityFeePerGas``; both kinds together is an error. With no price (the default) no fee
  is charged and only ``value`` must be affordable; with a price the sender must hold
  ``gas * fee cap + value`` ("insufficient funds for gas * price + value: ...").
* Checked before execution, with geth's messages (:class:`CallError`): fees, funds, intrinsic
  gas and the EIP-7623 floor (:class:`IntrinsicGasTooLow`), initcode size (EIP-3860), EIP-7702
  creation. A run still going at its deadline (checked at every JUMP / JUMPI and at the end;
  ``CALL_TIMEOUT`` for a call, ``ESTIMATE_TIMEOUT`` for all runs of an estimate or access-list
  search) fails with "execution aborted (timeout = ...)", as geth's ``--rpc.evmtimeout``.
* State overrides (:class:`AccountOverride`: balance, nonce, code, full ``state`` or partial
  ``state_diff``) are written into the overlay before execution and count as committed state.
* Execution failures are results, not exceptions: :class:`CallResult` holds the output (the
  revert data when reverted), gas used as a receipt counts it, the refund, logs, geth's error
  message ("execution reverted", "out of gas", "invalid opcode: INVALID", ...) and every
  account and slot the EVM looked at (for access lists).

:func:`estimate_gas` and :func:`create_access_list` are geth's algorithms, described on them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, cast

from eth.abc import ComputationAPI
from eth.exceptions import (
    ContractCreationCollision,
    FullStack,
    InsufficientFunds,
    InsufficientStack,
    InvalidInstruction,
    InvalidJumpDestination,
    OutOfBoundsRead,
    OutOfGas,
    ReservedBytesInCode,
    Revert,
    StackDepthLimit,
    VMError,
    WriteProtection,
)
from eth.vm.forks.berlin.transactions import calculate_txn_intrinsic_gas_berlin
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.computation import PragueComputation
from eth.vm.forks.prague.constants import PER_EMPTY_ACCOUNT_BASE_COST, SET_CODE_TRANSACTION_TYPE
from eth.vm.forks.prague.transactions import Authorization
from eth.vm.opcode_values import JUMP, JUMPI
from eth_abi import decode as abi_decode

from cybermiles.chain.errors import InvalidTransaction
from cybermiles.chain.header import Header
from cybermiles.chain.receipts import Log
from cybermiles.chain.transactions import AccessList, floor_data_gas, intrinsic_gas
from cybermiles.crypto.address import create_address, to_checksum
from cybermiles.execution.code_size import UnlimitedCodeSize
from cybermiles.execution.evm_state import (
    ChainComputation,
    ChainVMState,
    WorldStateAccountDB,
    chain_precompiles,
    execution_context,
)
from cybermiles.modules.framework.module import ERROR_SELECTOR
from cybermiles.state.account import Account
from cybermiles.state.overlay import OverlayState
from cybermiles.state.view import StateView

if TYPE_CHECKING:
    from cybermiles.chain.transactions import Transaction

ZERO_ADDRESS = b"\x00" * 20
RPC_GAS_CAP = 50_000_000  # geth's --rpc.gascap default
CALL_TIMEOUT = 5.0  # seconds, geth's --rpc.evmtimeout default (one eth_call)
ESTIMATE_TIMEOUT = 10.0  # seconds, all runs of one estimate or access-list search together
TX_GAS = 21_000
CALL_STIPEND = 2_300
MAX_INITCODE_SIZE = 49_152  # EIP-3860
ESTIMATE_ERROR_PER_MILLE = 15  # geth's estimateGasErrorRatio 0.015
DYNAMIC_FEE_TX_TYPE = 2

PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)
PANIC_REASONS = {  # geth's abi.panicReasons
    0x00: "generic panic",
    0x01: "assert(false)",
    0x11: "arithmetic underflow or overflow",
    0x12: "division or modulo by zero",
    0x21: "enum overflow",
    0x22: "invalid encoded storage byte array accessed",
    0x31: "out-of-bounds array access; popping on an empty array",
    0x32: "out-of-bounds access of an array or bytesN",
    0x41: "out of memory",
    0x51: "uninitialized function",
}


# ------------------------------------------------------------------------------- errors


class CallError(InvalidTransaction):
    """The call cannot start (geth's pre-check message); JSON-RPC answers -32000."""


class IntrinsicGasTooLow(CallError):
    """The gas limit is below the intrinsic gas or the EIP-7623 floor."""


class CallFailed(Exception):
    """Estimation found a call that fails whatever its gas: ``result`` says why."""

    def __init__(self, result: CallResult) -> None:
        super().__init__(result.error)
        self.result = result


class ExecutionTimeout(VMError):
    """Raised inside the EVM when a run passes its deadline."""


# ------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class CallEnv:
    """The block a call executes in: the header of the height whose state it reads."""

    number: int
    timestamp: int
    coinbase: bytes
    gas_limit: int
    prev_randao: bytes
    chain_id: int
    ancestor_hashes: Iterable[bytes] = ()  # parent first, at most 256 (BLOCKHASH); may be lazy
    unlimited_code_size: bool = False  # dev chains only: no EIP-170 / EIP-3860 limits

    @classmethod
    def from_header(
        cls, header: Header, chain_id: int, header_at: Callable[[int], Header | None]
    ) -> CallEnv:
        """geth's block context for a call on the state after ``header``: its own number,
        time, coinbase and gas limit; BLOCKHASH sees its ancestors, read lazily."""
        return cls(
            number=header.block_number,
            timestamp=header.timestamp,
            coinbase=header.coinbase,
            gas_limit=header.gas_limit,
            prev_randao=header.mix_hash,
            chain_id=chain_id,
            ancestor_hashes=_LazyAncestors(header, header_at),
        )


class _LazyAncestors:
    """Hashes of a header's ancestors, newest first, read by walking parent hashes on demand."""

    def __init__(self, header: Header, header_at: Callable[[int], Header | None]) -> None:
        self.header = header
        self.header_at = header_at

    def __iter__(self) -> Iterator[bytes]:
        number, parent_hash = self.header.block_number, self.header.parent_hash
        for _ in range(min(number, 256)):
            yield parent_hash
            number -= 1
            parent = self.header_at(number) if number > 0 else None
            if parent is None:
                return
            parent_hash = parent.parent_hash


@dataclass(frozen=True, slots=True)
class CallRequest:
    """An unsigned transaction to simulate (geth's ``TransactionArgs``)."""

    sender: bytes = ZERO_ADDRESS
    to: bytes | None = None  # None: contract creation
    gas: int | None = None
    gas_price: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    value: int = 0
    data: bytes = b""
    nonce: int | None = None
    access_list: AccessList = ()
    authorization_list: tuple[Authorization, ...] = ()  # EIP-7702, signed tuples

    def fee_caps(self) -> tuple[int, int]:
        """(max fee per gas, max priority fee per gas); a legacy ``gasPrice`` is both."""
        if self.gas_price is not None:
            if self.max_fee_per_gas is not None or self.max_priority_fee_per_gas is not None:
                raise CallError(
                    "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified"
                )
            return self.gas_price, self.gas_price
        return self.max_fee_per_gas or 0, self.max_priority_fee_per_gas or 0

    def minimum_gas(self) -> int:
        """Intrinsic gas or the EIP-7623 floor, whichever is higher (as for a signed tx)."""
        tx = cast("Transaction", self)  # reads only data, to, access_list, authorization_list
        return max(intrinsic_gas(tx), floor_data_gas(tx))


@dataclass(frozen=True, slots=True)
class AccountOverride:
    """geth's state override of one account; ``state`` replaces all storage, ``state_diff``
    sets some slots. ``state`` and ``state_diff`` together are refused by the RPC parser."""

    balance: int | None = None
    nonce: int | None = None
    code: bytes | None = None
    state: Mapping[int, int] | None = None
    state_diff: Mapping[int, int] | None = None


StateOverrides = Mapping[bytes, AccountOverride]


def apply_overrides(world: OverlayState, overrides: StateOverrides) -> None:
    """Write ``overrides`` into ``world`` as if they were committed (the journal is cleared)."""
    for address in sorted(overrides):
        change = overrides[address]
        account = world.get_account_or_empty(address)
        code_hash = account.code_hash if change.code is None else world.put_code(change.code)
        world.set_account(
            address,
            Account(
                account.nonce if change.nonce is None else change.nonce,
                account.balance if change.balance is None else change.balance,
                account.storage_root,
                code_hash,
            ),
        )
        if change.state is not None:
            world.wipe_storage(address)
        for slots in (change.state, change.state_diff):
            for slot, value in sorted((slots or {}).items()):
                world.set_storage(address, slot, value)
    world.clear_journal()


# ------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Accessed:
    """What the EVM's opcodes looked at (BALANCE, EXT*, CALL*, SELFDESTRUCT; SLOAD, SSTORE),
    in failed frames too: the raw material of an access list."""

    addresses: frozenset[bytes] = frozenset()
    slots: frozenset[tuple[bytes, int]] = frozenset()


@dataclass(frozen=True, slots=True)
class CallResult:
    """The outcome of one simulated transaction."""

    success: bool
    output: bytes  # return data; the revert data when reverted
    gas_used: int  # as a receipt counts it: refund and EIP-7623 floor applied
    refund: int  # gas refunded (geth's RefundedGas)
    logs: tuple[Log, ...]
    error: str | None  # geth's message: "execution reverted", "out of gas", ...
    reverted: bool
    accessed: Accessed = field(default_factory=Accessed)

    @property
    def revert_data(self) -> bytes:
        return self.output if self.reverted else b""

    @property
    def out_of_gas(self) -> bool:
        return self.error == "out of gas"


def revert_reason(data: bytes) -> str | None:
    """geth's ``abi.UnpackRevert``: the reason of ``Error(string)`` or ``Panic(uint256)``."""
    try:
        if data[:4] == ERROR_SELECTOR:
            return cast(str, abi_decode(["string"], data[4:])[0])
        if data[:4] == PANIC_SELECTOR:
            code = cast(int, abi_decode(["uint256"], data[4:])[0])
            return PANIC_REASONS.get(code, f"unknown panic code: {code:#x}")
    except Exception:  # malformed ABI data: no reason, like geth
        return None
    return None


def revert_message(data: bytes) -> str:
    """geth's revert message: "execution reverted", plus ": <reason>" when the data decodes."""
    reason = revert_reason(data)
    return "execution reverted" if reason is None else f"execution reverted: {reason}"


_INVALID_OPCODE = re.compile(r"Invalid opcode 0x([0-9a-fA-F]+)")


def vm_error_message(error: BaseException) -> str:
    """geth's message for a py-evm execution error (as close as py-evm's errors allow)."""
    text = str(error)
    if isinstance(error, Revert):
        return "execution reverted"
    if isinstance(error, OutOfGas):
        if "EIP170" in text:
            return "max code size exceeded"
        if "EIP-3860" in text:
            return "max initcode size exceeded"
        if "Write contract code" in text:
            return "contract creation code storage out of gas"
        return "out of gas"
    if isinstance(error, InvalidInstruction):
        match = _INVALID_OPCODE.match(text)
        if match is None:  # a jump onto a non-JUMPDEST byte
            return "invalid jump destination"
        opcode = int(match[1], 16)
        return (
            "invalid opcode: INVALID"
            if opcode == 0xFE
            else f"invalid opcode: opcode {opcode:#x} not defined"
        )
    simple: tuple[tuple[type[BaseException], str], ...] = (
        (InvalidJumpDestination, "invalid jump destination"),
        (InsufficientStack, "stack underflow"),
        (FullStack, "stack limit reached 1024"),
        (StackDepthLimit, "max call depth exceeded"),
        (InsufficientFunds, "insufficient balance for transfer"),
        (ContractCreationCollision, "contract address collision"),
        (WriteProtection, "write protection"),
        (OutOfBoundsRead, "return data out of bounds"),
        (ReservedBytesInCode, "invalid code: must not begin with 0xef"),
    )
    for kind, message in simple:
        if isinstance(error, kind):
            return message
    return text or type(error).__name__


# ------------------------------------------------------------------------------- py-evm seam


class _TracingAccountDB(WorldStateAccountDB):
    """Records every warm-check the EVM's opcodes make; unlike warm marks, never reverted."""

    def __init__(self, world: OverlayState) -> None:
        super().__init__(world)
        self.seen_addresses: set[bytes] = set()
        self.seen_slots: set[tuple[bytes, int]] = set()

    def is_address_warm(self, address: bytes) -> bool:  # type: ignore[override]
        self.seen_addresses.add(address)
        return super().is_address_warm(address)

    def is_storage_warm(self, address: bytes, slot: int) -> bool:  # type: ignore[override]
        self.seen_slots.add((address, slot))
        return super().is_storage_warm(address, slot)


class _DeadlineJump:
    """JUMP / JUMPI that first check the run's deadline: every loop passes through one, and
    call depth bounds everything else, so this bounds a run's time at a small cost."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.mnemonic = inner.mnemonic
        self.gas_cost = inner.gas_cost

    def __call__(self, computation: ComputationAPI) -> Any:
        if time.monotonic() > cast(_CallVMState, computation.state).deadline:
            raise ExecutionTimeout("execution deadline passed")
        return self.inner(computation=computation)


class _DeadlineComputation(ChainComputation):
    """Prague computation whose frames stop at their next jump once the deadline passed."""

    opcodes: ClassVar[dict[int, Any]] = {
        **PragueComputation.opcodes,
        JUMP: _DeadlineJump(PragueComputation.opcodes[JUMP]),
        JUMPI: _DeadlineJump(PragueComputation.opcodes[JUMPI]),
    }


class _CallVMState(ChainVMState):
    computation_class = _DeadlineComputation
    deadline = float("inf")


class _UnlimitedDeadlineComputation(UnlimitedCodeSize, _DeadlineComputation):
    """The deadline computation without contract size limits (dev chains only)."""


class _UnlimitedCallVMState(_CallVMState):
    computation_class = _UnlimitedDeadlineComputation


@dataclass(slots=True)
class _EvmCall:
    """The transaction fields py-evm's Prague executor reads, for an unsigned call."""

    sender: bytes
    to: bytes  # b"": creation (py-evm's CREATE_CONTRACT_ADDRESS)
    gas: int
    value: int
    data: bytes
    access_list: AccessList
    authorization_list: tuple[Authorization, ...]
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    type_id: int

    @property
    def gas_price(self) -> int:
        return self.max_fee_per_gas

    @property
    def intrinsic_gas(self) -> int:
        """py-evm's own (initcode words are charged by the computation, not up front)."""
        authorizations = PER_EMPTY_ACCOUNT_BASE_COST * len(self.authorization_list)
        return calculate_txn_intrinsic_gas_berlin(cast(Any, self)) + authorizations

    def __repr__(self) -> str:  # py-evm formats it into a debug line for every transaction
        return f"<call from 0x{self.sender.hex()} to 0x{self.to.hex()} gas {self.gas}>"


# ------------------------------------------------------------------------------- simulator


class Simulator:
    """Runs calls on the state of ``view`` (plus ``overrides``) in the block ``env``.

    Every run starts from a copy of the same overridden overlay, so runs never see each
    other's writes (geth copies its StateDB per estimation run likewise).
    """

    def __init__(
        self,
        view: StateView,
        env: CallEnv,
        overrides: StateOverrides | None = None,
        *,
        gas_cap: int = RPC_GAS_CAP,
        timeout: float = CALL_TIMEOUT,
    ) -> None:
        self.env = env
        self.gas_cap = gas_cap
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.base = OverlayState(view)
        if overrides:
            apply_overrides(self.base, overrides)
        self.context = execution_context(env)

    def account(self, address: bytes) -> Account:
        return self.base.get_account_or_empty(address)

    def has_code(self, address: bytes) -> bool:
        return self.account(address).has_code

    def sender_nonce(self, call: CallRequest) -> int:
        return self.account(call.sender).nonce if call.nonce is None else call.nonce

    def default_gas(self, call: CallRequest) -> int:
        gas = self.env.gas_limit if call.gas is None else call.gas
        return min(gas, self.gas_cap)

    def check(self, call: CallRequest, gas: int) -> tuple[int, int]:
        """geth's pre-checks; returns (max fee per gas, max priority fee per gas)."""
        fee_cap, tip_cap = call.fee_caps()
        if tip_cap > fee_cap:
            raise CallError(
                f"max priority fee per gas higher than max fee per gas: address "
                f"{to_checksum(call.sender)}, maxPriorityFeePerGas: {tip_cap}, "
                f"maxFeePerGas: {fee_cap}"
            )
        balance = self.account(call.sender).balance
        want = gas * fee_cap + call.value
        if balance < want:
            raise CallError(
                f"insufficient funds for gas * price + value: address "
                f"{to_checksum(call.sender)} have {balance} want {want}"
            )
        if call.authorization_list and call.to is None:
            raise CallError("EIP-7702 transaction cannot be used to create contract")
        tx = cast("Transaction", call)
        needed = intrinsic_gas(tx)
        if gas < needed:
            raise IntrinsicGasTooLow(f"intrinsic gas too low: have {gas}, want {needed}")
        floor = floor_data_gas(tx)
        if gas < floor:
            raise IntrinsicGasTooLow(
                f"insufficient gas for floor data gas cost: have {gas}, want {floor}"
            )
        if (
            call.to is None
            and len(call.data) > MAX_INITCODE_SIZE
            and not self.env.unlimited_code_size
        ):
            raise CallError(
                f"max initcode size exceeded: code size {len(call.data)} limit {MAX_INITCODE_SIZE}"
            )
        return fee_cap, tip_cap

    def run(self, call: CallRequest, gas: int | None = None) -> CallResult:
        """Execute ``call`` with ``gas`` (default: :meth:`default_gas`) on a fresh copy."""
        gas = self.default_gas(call) if gas is None else gas
        fee_cap, tip_cap = self.check(call, gas)
        world = self.base.copy()
        if call.nonce is not None:
            a = world.get_account_or_empty(call.sender)
            world.set_account(
                call.sender, Account(call.nonce, a.balance, a.storage_root, a.code_hash)
            )
        account_db = _TracingAccountDB(world)
        account_db.lock_changes()
        state_class = _UnlimitedCallVMState if self.env.unlimited_code_size else _CallVMState
        vm_state = state_class(account_db, self.context)
        vm_state.deadline = self.deadline
        evm_tx = _EvmCall(
            sender=call.sender,
            to=b"" if call.to is None else call.to,
            gas=gas,
            value=call.value,
            data=call.data,
            access_list=call.access_list,
            authorization_list=call.authorization_list,
            max_fee_per_gas=fee_cap,
            max_priority_fee_per_gas=tip_cap,
            type_id=SET_CODE_TRANSACTION_TYPE if call.authorization_list else DYNAMIC_FEE_TX_TYPE,
        )
        executor = vm_state.get_transaction_executor()
        tx = cast(Any, evm_tx)
        message = executor.build_evm_message(tx)
        computation = executor.build_computation(message, tx)
        consumed = gas - computation.get_gas_remaining()
        refund = executor.calculate_gas_refund(computation, consumed)
        computation = executor.finalize_computation(tx, computation)
        timed_out = computation.is_error and isinstance(computation.error, ExecutionTimeout)
        if timed_out or time.monotonic() > self.deadline:
            raise CallError(f"execution aborted (timeout = {self.timeout:g}s)")
        return _result(
            computation,
            PragueVM.finalize_gas_used(tx, computation),
            refund,
            Accessed(frozenset(account_db.seen_addresses), frozenset(account_db.seen_slots)),
        )


def _result(
    computation: ComputationAPI, gas_used: int, refund: int, accessed: Accessed
) -> CallResult:
    logs = tuple(
        Log(address, tuple(t.to_bytes(32, "big") for t in topics), data)
        for address, topics, data in computation.get_log_entries()
    )
    if not computation.is_error:
        return CallResult(True, computation.output, gas_used, refund, logs, None, False, accessed)
    error = computation.error
    reverted = isinstance(error, Revert)
    return CallResult(
        False,
        computation.output if reverted else b"",
        gas_used,
        refund,
        (),
        vm_error_message(error),
        reverted,
        accessed,
    )


# ------------------------------------------------------------------------------- entry points


def simulate(
    view: StateView,
    env: CallEnv,
    call: CallRequest,
    *,
    overrides: StateOverrides | None = None,
    gas_cap: int = RPC_GAS_CAP,
    timeout: float = CALL_TIMEOUT,
) -> CallResult:
    """eth_call: run ``call`` once; ``CallError`` if it cannot start."""
    return Simulator(view, env, overrides, gas_cap=gas_cap, timeout=timeout).run(call)


def estimate_gas(
    view: StateView,
    env: CallEnv,
    call: CallRequest,
    *,
    overrides: StateOverrides | None = None,
    gas_cap: int = RPC_GAS_CAP,
    timeout: float = ESTIMATE_TIMEOUT,
) -> int:
    """eth_estimateGas, geth's ``gasestimator.Estimate``:

    1. ``hi`` = the request's gas if >= 21000, else the block gas limit. With a fee cap, the
       sender must hold more than ``value`` ("insufficient funds for transfer") and ``hi`` is
       capped by ``(balance - value) // fee cap``; without one, ``value`` above the balance is
       the same error. Then ``hi`` is capped at ``gas_cap``.
    2. No data, ``to`` without code: try 21000; if it succeeds, that is the answer.
    3. Run with ``hi``. Failure: out of gas -> "gas required exceeds allowance (hi)"; any other
       failure -> :class:`CallFailed` (a revert carries its data). A pre-check error other than
       intrinsic gas -> ``CallError`` "failed with <hi> gas: ...".
    4. ``lo`` = max(gas used, intrinsic gas, EIP-7623 floor) - 1 (known to fail). Try the
       optimistic ``(gas used + refund + 2300) * 64 // 63``: it becomes ``hi`` if it succeeds,
       ``lo`` if not.
    5. Bisect (``mid = (lo + hi) // 2`` but at most ``2 * lo``) while ``lo + 1 < hi`` and
       ``(hi - lo) / hi >= 1.5%``; return ``hi``, the lowest gas known to succeed. A run failing
       for lack of intrinsic gas counts as a failure.
    """
    sim = Simulator(view, env, overrides, gas_cap=gas_cap, timeout=timeout)
    hi = call.gas if call.gas is not None and call.gas >= TX_GAS else env.gas_limit
    fee_cap, _ = call.fee_caps()
    balance = sim.account(call.sender).balance
    if fee_cap:
        if call.value >= balance:
            raise CallError("insufficient funds for transfer")
        hi = min(hi, (balance - call.value) // fee_cap)
    elif call.value > balance:
        raise CallError("insufficient funds for transfer")
    hi = min(hi, gas_cap)

    def fails(gas: int) -> tuple[bool, CallResult | None]:
        try:
            result = sim.run(call, gas)
        except IntrinsicGasTooLow:
            return True, None
        except CallError as exc:
            raise CallError(f"failed with {gas} gas: {exc}") from None
        return not result.success, result

    if not call.data and call.to is not None and not sim.has_code(call.to):
        try:
            if not fails(TX_GAS)[0]:
                return TX_GAS
        except CallError:
            pass  # the run with ``hi`` below reports it
    failed, result = fails(hi)
    if failed:
        if result is not None and not result.out_of_gas:
            raise CallFailed(result)
        raise CallError(f"gas required exceeds allowance ({hi})")
    assert result is not None
    lo = max(result.gas_used, call.minimum_gas()) - 1
    optimistic = (result.gas_used + result.refund + CALL_STIPEND) * 64 // 63
    if optimistic < hi:
        if fails(optimistic)[0]:
            lo = optimistic
        else:
            hi = optimistic
    while lo + 1 < hi:
        if (hi - lo) * 1000 < ESTIMATE_ERROR_PER_MILLE * hi:
            break
        mid = min((hi + lo) // 2, lo * 2)
        if fails(mid)[0]:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True, slots=True)
class AccessListResult:
    access_list: AccessList
    gas_used: int
    error: str | None  # the final run's execution error ("execution reverted", ...)


def create_access_list(
    view: StateView,
    env: CallEnv,
    call: CallRequest,
    *,
    overrides: StateOverrides | None = None,
    gas_cap: int = RPC_GAS_CAP,
    timeout: float = ESTIMATE_TIMEOUT,
) -> AccessListResult:
    """eth_createAccessList, geth's ``AccessList``: run with the list found so far (starting
    from the request's) until a run finds nothing new; answer that list and that run's gas.

    An entry is kept for every storage slot an opcode read or wrote (with its contract's
    address, even the recipient's), and for every address an opcode looked at except the
    sender, the recipient (or the created contract) and the precompiles. Addresses and slots
    are sorted. Pre-check failures raise ``CallError``.
    """
    sim = Simulator(view, env, overrides, gas_cap=gas_cap, timeout=timeout)
    target = call.to if call.to is not None else create_address(call.sender, sim.sender_nonce(call))
    exclude = {bytes(a) for a in chain_precompiles()} | {call.sender, target}
    access_list = _merge_access_list(call.access_list, Accessed(), exclude)
    while True:
        result = sim.run(replace(call, access_list=access_list))
        found = _merge_access_list(access_list, result.accessed, exclude)
        if found == access_list:
            return AccessListResult(access_list, result.gas_used, result.error)
        access_list = found


def _merge_access_list(
    base: AccessList, accessed: Accessed, exclude: frozenset[bytes]
) -> AccessList:
    entries: dict[bytes, set[int]] = {}
    for address, slots in base:
        if address not in exclude or slots:
            entries.setdefault(address, set()).update(slots)
    for address in accessed.addresses:
        if address not in exclude:
            entries.setdefault(address, set())
    for address, slot in accessed.slots:
        entries.setdefault(address, set()).add(slot)
    return tuple((address, tuple(sorted(entries[address]))) for address in sorted(entries))
