"""Differential fuzz test of our EVM interpreter loop against py-evm's own loop.

Rule tested: running a call frame through ``ChainComputation.apply_computation`` (our loop,
``cybermiles.execution.interpreter.execute_code``, with the fast handlers of
``fast_opcodes.REPLACES``) gives exactly what py-evm's unmodified loop
(``PragueComputation.apply_computation``, i.e. ``BaseComputation.apply_computation``) gives on
an identical ``ChainVMState``, for any bytecode, calldata, call value, gas limit and static flag.
Compared, for the top frame and every nested frame (CALL / CALLCODE / DELEGATECALL /
STATICCALL into a second random contract): success or error (exception type and the geth
message ``vm_error_message`` derives from it), gas remaining and refund, output, return data
and logs; afterwards the accounts (balances, nonces, code), storage, transient storage, warm
sets and original values. Memory and stack (items as integers: py-evm pushes big-endian bytes
where our handlers push ints) are compared for frames that succeed or revert only: an erroring
frame's memory and stack are discarded by the EVM, so they are not observable.

Programs come from a seeded ``random.Random`` (deterministic), biased towards the opcodes with
a fast replacement, mixed with py-evm-run ones, plus a few hand-written boundary cases.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import pytest
from eth.exceptions import (
    FullStack,
    InsufficientStack,
    InvalidInstruction,
    InvalidJumpDestination,
    OutOfGas,
    Revert,
)
from eth.vm import opcode_values as op
from eth.vm.forks.prague.computation import PragueComputation
from eth.vm.message import Message
from eth.vm.opcode import _FastOpcode
from eth.vm.stack import to_int

from cybermiles.chain.database import Database
from cybermiles.crypto.keccak import keccak256
from cybermiles.execution import evm_state
from cybermiles.execution.call import vm_error_message
from cybermiles.execution.evm_state import (
    ChainComputation,
    ChainVMState,
    WorldStateAccountDB,
    chain_precompiles,
    execution_context,
)
from cybermiles.execution.fast_opcodes import REPLACES
from cybermiles.state.account import Account
from cybermiles.state.world import WorldState

# Addresses and hashes with distinct bytes, so that reading the wrong end of a bytes stack
# item (py-evm pushes addresses and hashes as bytes) shows.
ORIGIN = bytes(range(0xA0, 0xB4))
CONTRACT = bytes(range(0xC0, 0xD4))  # runs the program
CALLEE = bytes(range(0xD0, 0xE4))  # a second random program the first one calls
CONTRACT_STORAGE = {0: 1, 1: 2**256 - 1, 2: 42, 7: 0x5B}
CALLEE_STORAGE = {0: 9, 3: 2**255}
AMPLE_GAS = 30_000

ENV = SimpleNamespace(
    number=1000,
    timestamp=1_700_000_000,
    coinbase=bytes(range(0x30, 0x44)),
    gas_limit=30_000_000,
    prev_randao=b"\x07" * 32,
    chain_id=1234,
    ancestor_hashes=tuple(random.Random(i).randbytes(32) for i in range(256)),
)

# Opcode bytes whose py-evm logic has a fast replacement (what our loop runs differently).
FAST = sorted(
    byte
    for byte, fn in PragueComputation.opcodes.items()
    if type(fn) is _FastOpcode and fn.logic_fn in REPLACES
)
BINARY = [
    op.ADD, op.SUB, op.MUL, op.DIV, op.MOD, op.SHL, op.SHR, op.SAR, op.LT, op.GT,
    op.SLT, op.SGT, op.EQ, op.AND, op.OR, op.XOR, op.BYTE,
]  # fmt: skip
NULLARY = [op.PC, op.GAS, op.CALLDATASIZE, op.CALLVALUE, op.CALLER, op.ADDRESS]
SLOW_ARITH = [op.SDIV, op.SMOD, op.SIGNEXTEND, op.EXP, op.ADDMOD, op.MULMOD]
SLOW_ENV = [
    op.MSIZE, op.RETURNDATASIZE, op.ORIGIN, op.CODESIZE, op.CHAINID, op.NUMBER,
    op.SELFBALANCE, op.GASPRICE, op.COINBASE,
]  # fmt: skip
UNDEFINED = [0x0C, 0x21, 0x4F, 0xEF, 0xFE]  # 0xfe: INVALID
INTERESTING = [
    0, 1, 2, 31, 32, 33, 255, 256, 2**255, 2**255 - 1, 2**256 - 1, 2**256 - 32,
    2**32, 2**64, 2**64 - 1, 2**128,
]  # fmt: skip
LARGE_OFFSETS = [2**32, 2**64, 2**256 - 1, 2**256 - 32, 2**24]


# ------------------------------------------------------------------------ programs


def push(value: int, width: int | None = None) -> bytes:
    """PUSH``width`` of ``value`` (PUSH0 for width 0); the smallest width by default."""
    if width is None:
        width = max(1, (value.bit_length() + 7) // 8)
    return bytes([op.PUSH0 + width]) + value.to_bytes(width, "big")


def ops(*codes: int) -> bytes:
    return bytes(codes)


@dataclass(frozen=True)
class Case:
    """One run: the program (code of CONTRACT), the callee's code and the message."""

    code: bytes
    callee: bytes = b""
    data: bytes = b""
    value: int = 0
    gas: int = AMPLE_GAS
    static: bool = False

    def __repr__(self) -> str:  # pasteable, with the bytes in hex
        hexes = ", ".join(
            f"{name}=bytes.fromhex({getattr(self, name).hex()!r})"
            for name in ("code", "callee", "data")
        )
        return f"Case({hexes}, value={self.value}, gas={self.gas}, static={self.static})"


EFFECTS: dict[int, tuple[int, int]] = {
    **{code: (2, 1) for code in [*BINARY, op.SDIV, op.SMOD, op.SIGNEXTEND, op.EXP, op.SHA3]},
    **{code: (0, 1) for code in NULLARY + SLOW_ENV},
    **{code: (1, 1) for code in (op.ISZERO, op.NOT, op.CALLDATALOAD, op.MLOAD, op.SLOAD)},
    **{code: (1, 1) for code in (op.TLOAD, op.BLOCKHASH, op.EXTCODEHASH, op.BLOBHASH)},
    **{code: (2, 0) for code in (op.MSTORE, op.MSTORE8, op.JUMPI, op.SSTORE, op.TSTORE)},
    **{code: (2, 0) for code in (op.RETURN, op.REVERT)},
    **{code: (3, 0) for code in (op.MCOPY, op.CALLDATACOPY, op.CODECOPY, op.RETURNDATACOPY)},
    op.ADDMOD: (3, 1),
    op.MULMOD: (3, 1),
    op.POP: (1, 0),
    op.JUMP: (1, 0),
    op.CALL: (7, 1),
    op.CALLCODE: (7, 1),
    op.DELEGATECALL: (6, 1),
    op.STATICCALL: (6, 1),
}


def stack_effect(code: int) -> tuple[int, int]:
    """(items an opcode needs, items in their place afterwards), for the generator's guess."""
    if op.PUSH0 <= code <= op.PUSH32:
        return 0, 1
    if op.DUP1 <= code <= op.DUP16:
        return code - op.DUP1 + 1, code - op.DUP1 + 2
    if op.SWAP1 <= code <= op.SWAP16:
        return code - op.SWAP1 + 2, code - op.SWAP1 + 2
    if op.LOG0 <= code <= op.LOG4:
        return code - op.LOG0 + 2, 0
    return EFFECTS.get(code, (0, 0))


class ProgramBuilder:
    """Random bytecode; jump targets are PUSH2 placeholders filled in once the code is done.

    It keeps a guess of the stack depth and, most of the time, pushes what an opcode is
    about to miss, so that programs run for a while before they end (underflows stay, rarer).
    """

    def __init__(self, rng: random.Random, *, calls: bool) -> None:
        self.rng = rng
        self.calls = calls
        self.code = bytearray()
        self.depth = 0  # guessed stack depth at the end of the code so far
        self.fixups: list[tuple[int, str]] = []  # (position of the PUSH2 data, target kind)
        self.jumpdests: list[int] = []
        self.data_5b: list[int] = []  # 0x5b bytes inside PUSH data

    # -- values
    def value(self) -> int:
        rng = self.rng
        r = rng.random()
        if r < 0.45:
            return rng.choice(INTERESTING)
        if r < 0.65:
            return rng.randint(0, 200)
        if r < 0.8:
            return rng.getrandbits(256)
        if r < 0.9:
            return rng.getrandbits(rng.randint(1, 255))
        return 2**256 - rng.randint(1, 300)  # small negative numbers

    def offset(self) -> int:
        rng = self.rng
        r = rng.random()
        if r < 0.6:
            return rng.randint(0, 200)
        if r < 0.95:
            return max(0, 32 * rng.randint(0, 40) + rng.choice([-1, 0, 1]))
        return rng.choice(LARGE_OFFSETS)

    def size(self) -> int:
        rng = self.rng
        return rng.choice([0, 0, 1, 31, 32, 33, 64, rng.randint(0, 120), rng.choice(LARGE_OFFSETS)])

    # -- emitting
    def op(self, code: int) -> None:
        """Emit ``code``, usually after pushing the items it would otherwise miss."""
        needed, left = stack_effect(code)
        if self.depth < needed and self.rng.random() < 0.97:
            for _ in range(needed - self.depth):
                self.push(self.value())
        self.code.append(code)
        self.depth = max(self.depth - needed, 0) + left

    def push(self, value: int) -> None:
        rng = self.rng
        self.depth += 1
        if value == 0 and rng.random() < 0.5:
            self.code.append(op.PUSH0)
            return
        width = max(1, (value.bit_length() + 7) // 8)
        if rng.random() < 0.2:
            width = rng.randint(width, 32)
        data = value.to_bytes(width, "big")
        start = len(self.code) + 1
        self.code.append(op.PUSH0 + width)
        self.code += data
        if b"\x5b" in data:
            self.data_5b.extend(start + i for i, byte in enumerate(data) if byte == op.JUMPDEST)

    def push_target(self) -> None:
        rng = self.rng
        kind = rng.choice(["dest"] * 9 + ["data", "bad", "end", "large"])
        if kind == "large":
            self.push(rng.choice([2**16, 2**32, 2**256 - 1, rng.getrandbits(256)]))
            return
        self.code.append(op.PUSH2)
        self.fixups.append((len(self.code), kind))
        self.code += b"\0\0"
        self.depth += 1

    def jumpdest(self) -> None:
        self.jumpdests.append(len(self.code))
        self.code.append(op.JUMPDEST)

    # -- chunks
    def chunk_kinds(self) -> tuple[list[Callable[[], None]], list[float]]:
        """The chunk generators and their cumulative weights."""
        rng = self.rng
        kinds: list[tuple[Callable[[], None], float]] = [
            (lambda: self.push(self.value()), 10),
            (self.binary, 12),
            (self.unary, 3),
            (lambda: self.op(rng.choice(FAST)), 8),  # any replaced opcode, PUSH without data too
            (lambda: self.op(op.DUP1 + self.stack_position()), 5),
            (lambda: self.op(op.SWAP1 + self.stack_position()), 5),
            (lambda: self.op(op.POP), 2),
            (lambda: self.op(rng.choice(NULLARY)), 4),
            (self.calldataload, 3),
            (self.memory, 6),
            (self.jumpdest, 3),
            (self.jump, 3),
            (self.jumpi, 3),
            (self.push_5b, 1),
            (self.slow_arith, 4),
            (self.storage, 4),
            (self.slow_memory, 3),
            (lambda: self.op(rng.choice(SLOW_ENV)), 2),
            (self.log, 1.5),
            (self.halt, 1),
        ]
        if self.calls:
            kinds.append((self.call, 2.5))
        return [kind for kind, _ in kinds], list(itertools.accumulate(w for _, w in kinds))

    def stack_position(self) -> int:  # 0..15, biased towards the top
        rng = self.rng
        return rng.randint(0, 3) if rng.random() < 0.5 else rng.randint(0, 15)

    def operand(self) -> None:
        """Push a value; sometimes as py-evm's own opcodes leave it: big-endian bytes (of any
        length up to 32, zero ones too: b"" from BLOCKHASH or TLOAD, b"\\0" from EXTCODEHASH of
        an absent account, 32 zero bytes from BLOBHASH without blobs)."""
        rng = self.rng
        r = rng.random()
        if r < 0.8:
            self.push(self.value())
        elif r < 0.88:
            self.op(rng.choice([op.CALLER, op.ADDRESS, op.ORIGIN, op.COINBASE]))
        elif r < 0.92:
            self.push(rng.choice([0, 32, rng.randint(0, 64)]))
            self.push(rng.randint(0, 64))
            self.op(op.SHA3)
        else:
            code = rng.choice([op.TLOAD, op.BLOCKHASH, op.EXTCODEHASH, op.BLOBHASH])
            if code == op.EXTCODEHASH:
                self.push(int.from_bytes(rng.choice([CALLEE, ORIGIN, rng.randbytes(20)]), "big"))
            elif code == op.BLOCKHASH:
                self.push(ENV.number - rng.choice([0, 1, 2, 256, 257]))
            else:
                self.push(rng.choice([0, 1, 2, 3, 7, self.value()]))
            self.op(code)

    def binary(self) -> None:
        rng = self.rng
        for _ in range(rng.choice([0, 1, 2, 2, 2])):
            self.operand()
        self.op(rng.choice(BINARY))

    def unary(self) -> None:
        if self.rng.random() < 0.7:
            self.operand()
        self.op(self.rng.choice([op.ISZERO, op.NOT]))

    def calldataload(self) -> None:
        rng = self.rng
        self.push(rng.choice([rng.randint(0, 110), rng.choice(LARGE_OFFSETS)]))
        self.op(op.CALLDATALOAD)

    def memory(self) -> None:
        rng = self.rng
        kind = rng.choice([op.MSTORE, op.MSTORE8, op.MLOAD])
        if kind != op.MLOAD:
            self.operand()
        self.push(self.offset())
        self.op(kind)

    def jump(self) -> None:
        self.push_target()
        self.op(op.JUMP)

    def jumpi(self) -> None:
        rng = self.rng
        if rng.random() < 0.8:
            self.push(rng.choice([0, 1, 0, 1, self.value()]))
        else:
            self.operand()
        self.push_target()
        self.op(op.JUMPI)

    def push_5b(self) -> None:
        rng = self.rng
        width = rng.randint(1, 4)
        data = bytearray(rng.randbytes(width))
        data[rng.randrange(width)] = op.JUMPDEST
        self.push(int.from_bytes(data, "big"))

    def slow_arith(self) -> None:
        rng = self.rng
        code = rng.choice(SLOW_ARITH)
        for _ in range(3 if code in (op.ADDMOD, op.MULMOD) else 2):
            self.push(self.value())
        self.op(code)

    def storage(self) -> None:
        rng = self.rng
        code = rng.choice([op.SLOAD, op.SSTORE, op.TLOAD, op.TSTORE])
        if code in (op.SSTORE, op.TSTORE):
            self.push(rng.choice([0, 0, 1, self.value()]))
        self.push(rng.choice([0, 1, 2, 3, 7, self.value()]))
        self.op(code)

    def slow_memory(self) -> None:
        rng = self.rng
        code = rng.choice(
            [op.SHA3, op.MCOPY, op.CALLDATACOPY, op.CODECOPY, op.RETURNDATACOPY, op.MSIZE]
        )
        if code == op.SHA3:
            self.push(self.size())
            self.push(self.offset())
        elif code != op.MSIZE:
            self.push(self.size())
            self.push(rng.choice([0, rng.randint(0, 64), self.offset()]))
            self.push(self.offset())
        self.op(code)

    def log(self) -> None:
        rng = self.rng
        topics = rng.randint(0, 4)
        for _ in range(topics):
            self.push(self.value())
        self.push(self.size())
        self.push(self.offset())
        self.op(op.LOG0 + topics)

    def halt(self) -> None:
        rng = self.rng
        code = rng.choice([op.RETURN, op.RETURN, op.REVERT, op.REVERT, op.STOP, *UNDEFINED])
        if code in (op.RETURN, op.REVERT):
            self.push(rng.choice([0, 32, 64, self.size()]))
            self.push(rng.choice([0, self.offset()]))
        self.op(code)

    def call(self) -> None:
        rng = self.rng
        code = rng.choice([op.CALL, op.CALL, op.STATICCALL, op.DELEGATECALL, op.CALLCODE])
        for _ in range(2):  # return area, then argument area
            self.push(rng.choice([0, 32, 64, rng.randint(0, 100)]))
            self.push(rng.choice([0, 32, rng.randint(0, 200)]))
        if code in (op.CALL, op.CALLCODE):
            self.push(rng.choice([0, 0, 1, 10**6]))
        target = rng.choice([CALLEE] * 8 + [ORIGIN, b"\x00" * 19 + b"\x04", rng.randbytes(20)])
        self.push(int.from_bytes(target, "big"))
        if rng.random() < 0.5:
            self.op(op.GAS)
        else:
            self.push(rng.choice([0, rng.randint(0, 3000), 2**256 - 1]))
        self.op(code)

    # -- whole programs
    def fill_stack(self) -> None:
        """Push about 1,024 items (straight-line or in a loop) to reach the stack limit."""
        rng = self.rng
        pushers = [op.PC, op.GAS, op.CALLDATASIZE, op.CALLVALUE, op.CALLER, op.ADDRESS, op.MSIZE]

        def push_one() -> None:
            r = rng.random()
            if r < 0.45:
                self.push(self.value())
            elif r < 0.85:
                self.op(rng.choice(pushers))
            else:
                self.op(op.DUP1 + (rng.randint(0, 15) if r > 0.95 else 0))

        if rng.random() < 0.5:
            for _ in range(rng.choice([1023, 1024, 1025, 1030])):
                push_one()
        else:
            start = len(self.code)
            self.jumpdest()
            for _ in range(rng.randint(1, 8)):
                push_one()
            self.code += push(start, 2) + ops(op.JUMP)

    def build(self, chunks: int) -> bytes:
        rng = self.rng
        if self.calls and rng.random() < 0.08:
            self.fill_stack()
        elif rng.random() < 0.7:
            for _ in range(rng.randint(0, 18)):
                self.push(self.value())
        kinds, weights = self.chunk_kinds()
        for kind in rng.choices(kinds, cum_weights=weights, k=chunks):
            kind()
        if rng.random() < 0.1:  # a PUSH truncated by the end of the code
            width = rng.randint(1, 32)
            self.code += ops(op.PUSH0 + width) + rng.randbytes(rng.randrange(width))
        for position, kind in self.fixups:
            target = self.resolve(kind, position)
            self.code[position : position + 2] = target.to_bytes(2, "big")
        return bytes(self.code)

    def resolve(self, kind: str, position: int) -> int:
        rng = self.rng
        if kind == "dest" and self.jumpdests:
            forward = [dest for dest in self.jumpdests if dest > position]
            return rng.choice(forward if forward and rng.random() < 0.7 else self.jumpdests)
        if kind == "data" and self.data_5b:
            return rng.choice(self.data_5b)
        if kind == "end":
            return len(self.code) + rng.choice([0, 1, 5])
        return rng.randrange(len(self.code))


def random_case(rng: random.Random) -> Case:
    code = ProgramBuilder(rng, calls=True).build(rng.randint(1, 40))
    callee = ProgramBuilder(rng, calls=False).build(rng.randint(0, 15))
    r = rng.random()
    if r < 0.08:
        gas = rng.randint(0, 30)
    elif r < 0.2:
        gas = rng.randint(30, 1_000)
    elif r < 0.4:
        gas = rng.randint(1_000, 10_000)
    else:
        gas = AMPLE_GAS
    return Case(
        code=code,
        callee=callee,
        data=rng.randbytes(rng.randint(0, 100)),
        value=rng.choice([0, 0, 0, 1, rng.getrandbits(64), 2**256 - 1]),
        gas=gas,
        static=rng.random() < 0.15,
    )


# ------------------------------------------------------------------------ running


class LoopCalls:
    """How many times our interpreter loop (``evm_state.execute_code``) ran since reset."""

    count = 0


@pytest.fixture(autouse=True)
def count_loop_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    real = evm_state.execute_code

    def counting(computation: Any) -> None:
        LoopCalls.count += 1
        real(computation)

    monkeypatch.setattr(evm_state, "execute_code", counting)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(tmp_path_factory.mktemp("interpreter") / "db")
    yield database
    database.close()


def frames(computation: Any) -> Iterator[Any]:
    yield computation
    for child in computation.children:
        yield from frames(child)


def frame_summary(c: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "error": None if c.is_success else (type(c.error), vm_error_message(c.error)),
        "gas_remaining": c._gas_meter.gas_remaining,
        "gas_refund": c.get_gas_refund(),
        "output": c.output,
        "return_data": bytes(c.return_data),
        "logs": c.get_raw_log_entries(),
        "children": [frame_summary(child) for child in c.children],
    }
    if c.is_success or isinstance(c.error, Revert):
        summary["memory"] = bytes(c._memory._bytes)
        summary["stack"] = [to_int(item) for item in c._stack.values]
    return summary


def run(db: Database, case: Case, computation_class: type) -> tuple[Any, dict[str, Any]]:
    """Run ``case`` on a fresh state with ``computation_class``: its computation and a
    summary of everything observable."""
    world = WorldState(db)
    for address, code, balance, storage in (
        (ORIGIN, b"", 10**20, {}),
        (CONTRACT, case.code, 10**9, CONTRACT_STORAGE),
        (CALLEE, case.callee, 5, CALLEE_STORAGE),
    ):
        world.set_account(
            address, Account(nonce=1, balance=balance, code_hash=world.put_code(code))
        )
        for slot, value in storage.items():
            world.set_storage(address, slot, value)
    account_db = WorldStateAccountDB(world)
    account_db.lock_changes()
    state = ChainVMState(account_db, execution_context(ENV))  # type: ignore[arg-type]
    message = Message(
        gas=case.gas,
        to=CONTRACT,
        sender=ORIGIN,
        value=case.value,
        data=case.data,
        code=case.code,
        is_static=case.static,
    )
    tx_context = state.get_transaction_context_class()(gas_price=1, origin=ORIGIN)
    try:
        computation = computation_class.apply_computation(state, message, tx_context)
    except Exception as error:  # not a VMError: must escape both loops alike
        return None, {"raised": (type(error), str(error))}
    transient = state.transient_storage._db.diff().pending_items()
    return computation, {
        "frame": frame_summary(computation),
        "accounts": dict(world._accounts),
        "storage": {address: dict(slots) for address, slots in world._storage.items()},
        "wiped": set(world._wiped),
        "warm": set(account_db._warm),
        "original": dict(account_db._original),
        "transient": {key: int.from_bytes(value, "big") for key, value in transient},
    }


def assert_same(db: Database, case: Case) -> dict[str, Any]:
    """Run ``case`` on py-evm's loop and on ours; assert identical results; return ours."""
    LoopCalls.count = 0
    reference, expected = run(db, case, PragueComputation)
    assert LoopCalls.count == 0, "the reference side ran our loop"
    if reference is not None:
        assert all(type(frame) is PragueComputation for frame in frames(reference))
    ours, actual = run(db, case, ChainComputation)
    if ours is not None:
        assert all(type(frame) is ChainComputation for frame in frames(ours))
        precompiles = chain_precompiles()
        ran = sum(frame.msg.code_address not in precompiles for frame in frames(ours))
        assert LoopCalls.count == ran, "a frame did not run through our loop"
    assert actual == expected, f"interpreter diverges from py-evm on {case!r}"
    return actual


def gas_used(db: Database, case: Case) -> int | None:
    """Gas py-evm's loop uses for ``case`` (None if it fails or raises)."""
    reference, _ = run(db, case, PragueComputation)
    if reference is None or reference.is_error:
        return None
    return case.gas - reference._gas_meter.gas_remaining


# ------------------------------------------------------------------------ the fuzz

SEEDS = [1, 2, 3, 4, 5, 6]
PROGRAMS_PER_SEED = 250


@functools.cache
def fuzz_cases(seed: int) -> list[tuple[Case, float | None]]:
    """The fuzz programs of ``seed``, each with None or, to set its gas limit at (or just
    under) a boundary, the share of the gas py-evm uses on it (at ample gas): 1.0 exactly that
    gas, a negative share one gas less, else that share of it."""
    rng = random.Random(seed)
    cases: list[tuple[Case, float | None]] = []
    for _ in range(PROGRAMS_PER_SEED):
        case = random_case(rng)
        share = None
        if rng.random() < 0.25:
            share = rng.choice([1.0, -1.0, -1.0, rng.random()])
        cases.append((case, share))
    return cases


def instructions(code: bytes) -> Iterator[int]:
    """The opcodes of ``code`` (PUSH data skipped)."""
    pc = 0
    while pc < len(code):
        opcode = code[pc]
        yield opcode
        pc += 1 + (opcode - op.PUSH0 if op.PUSH0 <= opcode <= op.PUSH32 else 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_programs_match_py_evm(db: Database, seed: int) -> None:
    for case, share in fuzz_cases(seed):
        if share is not None:
            used = gas_used(db, replace(case, gas=AMPLE_GAS))
            if used is not None:
                gas = used if share == 1.0 else used - 1 if share < 0 else int(used * share)
                case = replace(case, gas=max(gas, 0))
        assert_same(db, case)


def test_fuzz_programs_contain_every_replaced_opcode() -> None:
    seen: set[int] = set()
    for seed in SEEDS:
        for case, _ in fuzz_cases(seed):
            seen.update(instructions(case.code))
            seen.update(instructions(case.callee))
    assert set(FAST) <= seen


# ------------------------------------------------------------------------ targeted cases

NEG_ONE = 2**256 - 1
NEG_TWO = 2**256 - 2


def test_signed_comparisons_and_sar_on_negative_numbers(db: Database) -> None:
    code = (
        push(1) + push(NEG_ONE) + ops(op.SLT)  # -1 < 1
        + push(NEG_ONE) + push(1) + ops(op.SGT)  # 1 > -1
        + push(NEG_TWO) + push(NEG_ONE) + ops(op.SLT)  # -1 < -2: no
        + push(2**255) + push(2**255 - 1) + ops(op.SGT)  # max > min
        + push(NEG_TWO) + push(1) + ops(op.SAR)  # -2 >> 1 = -1
        + push(2**255) + push(255) + ops(op.SAR)  # min >> 255 = -1
        + push(2**255) + push(256) + ops(op.SAR)  # min >> 256 = -1
        + push(2**255 - 1) + push(256) + ops(op.SAR)  # max >> 256 = 0
        + push(NEG_ONE) + push(NEG_ONE) + ops(op.SAR)  # -1 >> huge = -1
    )  # fmt: skip
    result = assert_same(db, Case(code))
    assert result["frame"]["stack"] == [1, 1, 0, 1, NEG_ONE, NEG_ONE, NEG_ONE, 0, NEG_ONE]


def test_byte_at_and_beyond_position_31(db: Database) -> None:
    value = int.from_bytes(bytes(range(1, 33)), "big")
    code = b"".join(
        push(value) + push(position) + ops(op.BYTE) for position in (0, 31, 32, 33, NEG_ONE)
    )
    assert assert_same(db, Case(code))["frame"]["stack"] == [1, 32, 0, 0, 0]


def test_shifts_by_256_or_more(db: Database) -> None:
    code = b"".join(
        push(NEG_ONE) + push(shift) + ops(kind)
        for kind in (op.SHL, op.SHR)
        for shift in (255, 256, 257, NEG_ONE)
    )
    assert assert_same(db, Case(code))["frame"]["stack"] == [2**255, 0, 0, 0, 1, 0, 0, 0]


def test_mstore8_of_push0(db: Database) -> None:
    # py-evm pushes b"" for PUSH0; MSTORE8 must store a zero byte over the 0xff
    code = push(0xFF) + push(5) + ops(op.MSTORE8, op.PUSH0) + push(5) + ops(op.MSTORE8)
    code += push(0) + ops(op.MLOAD)
    assert assert_same(db, Case(code))["frame"]["memory"] == bytes(32)


def test_fast_opcodes_read_py_evm_bytes_items(db: Database) -> None:
    # CALLER / ORIGIN / SHA3 leave big-endian bytes (20 or 32 of them) on the stack
    code = (
        ops(op.CALLER) + push(0) + ops(op.MSTORE)  # right-aligned in the first word
        + ops(op.ORIGIN) + push(32) + ops(op.MSTORE8)  # its last byte
        + push(32) + push(0) + ops(op.SHA3) + push(33) + ops(op.MSTORE8)
        + ops(op.ADDRESS, op.CALLER, op.ADD)
        + push(32) + push(0) + ops(op.SHA3) + push(0) + ops(op.BYTE)
        + ops(op.COINBASE, op.ISZERO)
    )  # fmt: skip
    word = ORIGIN.rjust(32, b"\0")
    digest = keccak256(word)
    result = assert_same(db, Case(code))["frame"]
    assert result["memory"] == word + bytes([ORIGIN[-1], digest[-1]]) + bytes(30)
    total = (int.from_bytes(CONTRACT, "big") + int.from_bytes(ORIGIN, "big")) % 2**256
    assert result["stack"] == [total, digest[0], 0]


def test_zero_bytes_items_are_zero(db: Database) -> None:
    # BLOBHASH (no blobs) leaves 32 zero bytes, EXTCODEHASH of an absent account b"\\0": a
    # JUMPI on them must not jump (to the INVALID at the end), ISZERO gives 1, MSTORE8 a 0
    for zero in (push(0) + ops(op.BLOBHASH), push(0x1234) + ops(op.EXTCODEHASH)):
        rest = zero + ops(op.ISZERO) + zero + ops(op.DUP1, op.MSTORE8, op.PUSH0, op.MLOAD, op.STOP)
        target = len(zero) + 1 + 3 + 1 + len(rest)
        code = zero + ops(op.DUP1) + push(target, 2) + ops(op.JUMPI) + rest
        code += ops(op.JUMPDEST, 0xFE)
        result = assert_same(db, Case(code))["frame"]
        assert result["error"] is None and result["stack"] == [0, 1, 0]


def test_arithmetic_wraps_and_divides_by_zero(db: Database) -> None:
    code = (
        push(NEG_ONE) + push(2) + ops(op.ADD)  # 1
        + push(1) + push(0) + ops(op.SUB)  # 0 - 1 = -1
        + push(2**255) + push(2) + ops(op.MUL)  # 0
        + push(NEG_ONE) + push(0) + ops(op.DIV)  # 0 / (2**256 - 1)
        + push(0) + push(5) + ops(op.DIV)  # 5 / 0
        + push(0) + push(5) + ops(op.MOD)  # 5 % 0
        + push(3) + push(NEG_ONE) + ops(op.MOD)  # (2**256 - 1) % 3
    )  # fmt: skip
    assert assert_same(db, Case(code))["frame"]["stack"] == [1, NEG_ONE, 0, 0, 0, 0, 0]


def test_mload_extends_memory(db: Database) -> None:
    code = push(0x41) + ops(op.MLOAD, op.MSIZE) + push(0) + ops(op.MLOAD, op.MSIZE)
    result = assert_same(db, Case(code))
    assert result["frame"]["stack"] == [0, 0x80, 0, 0x80]
    # one gas short of what it uses (memory expansion included) it runs out of gas
    used = AMPLE_GAS - result["frame"]["gas_remaining"]
    short = assert_same(db, Case(code, gas=used - 1))
    assert short["frame"]["error"][0] is OutOfGas


def test_jump_into_push_data(db: Database) -> None:
    # 0: PUSH1 4, 2: JUMP, 3: PUSH1 0x5b (the 0x5b at 4 is data), 5: STOP
    code = push(4) + ops(op.JUMP) + push(0x5B) + ops(op.STOP)
    result = assert_same(db, Case(code))
    assert result["frame"]["error"][0] is InvalidInstruction
    jumpi = push(1) + push(6) + ops(op.JUMPI) + push(0x5B) + ops(op.STOP)
    assert assert_same(db, Case(jumpi))["frame"]["error"][0] is InvalidInstruction
    # after a PUSH32 target: 33 JUMP, 34 PUSH1, 35 0x5b (data), 36 JUMPDEST, 37 STOP
    body = ops(op.JUMP) + push(0x5B) + ops(op.JUMPDEST, op.STOP)
    for target, error in (
        (36, None),
        (34, InvalidJumpDestination),
        (35, InvalidInstruction),
        (38, InvalidJumpDestination),
        (2**64 + 36, InvalidJumpDestination),
        (NEG_ONE, InvalidJumpDestination),
    ):
        result = assert_same(db, Case(push(target, 32) + body))["frame"]
        assert (result["error"] and result["error"][0]) is error


@pytest.mark.parametrize("kind", ["dup", "swap"])
def test_dup16_swap16_at_the_stack_depth_boundary(db: Database, kind: str) -> None:
    needed = 16 if kind == "dup" else 17
    code_byte = op.DUP16 if kind == "dup" else op.SWAP16
    for items in (needed, needed - 1):
        code = b"".join(push(i + 1) for i in range(items)) + ops(code_byte)
        result = assert_same(db, Case(code))
        if items == needed:
            expected = list(range(1, items + 1))
            if kind == "dup":
                expected.append(1)
            else:
                expected[0], expected[-1] = expected[-1], expected[0]
            assert result["frame"]["stack"] == expected
        else:
            assert result["frame"]["error"][0] is InsufficientStack


def test_truncated_push32_at_end_of_code(db: Database) -> None:
    code = push(1) + ops(op.PUSH32) + b"\x12\x34\x56"
    result = assert_same(db, Case(code))
    assert result["frame"]["stack"] == [1, int.from_bytes(b"\x12\x34\x56".ljust(32, b"\0"), "big")]


@pytest.mark.parametrize("last", [op.PUSH0, op.PUSH1, op.DUP1, op.PC, op.GAS, op.CALLER, op.MSIZE])
def test_stack_limit_1024_ok_1025_full(db: Database, last: int) -> None:
    fill = ops(op.PUSH0) * 1023
    tail = ops(last, 0x01) if last == op.PUSH1 else ops(last)
    full = assert_same(db, Case(fill + tail))
    assert full["frame"]["error"] is None and len(full["frame"]["stack"]) == 1024
    over = assert_same(db, Case(fill + ops(op.PUSH0) + tail))
    assert over["frame"]["error"][0] is FullStack


def test_out_of_gas_exactly_at_a_fast_opcode(db: Database) -> None:
    code = push(1) + push(2) + ops(op.ADD, op.GAS, op.JUMPDEST)
    exact = 3 + 3 + 3 + 2 + 1
    ok = assert_same(db, Case(code, gas=exact))
    assert ok["frame"]["error"] is None and ok["frame"]["stack"] == [3, 1]
    for gas in (exact - 1, exact - 2, 8, 6, 0):
        result = assert_same(db, Case(code, gas=gas))
        assert result["frame"]["error"][0] is OutOfGas and result["frame"]["gas_remaining"] == 0
