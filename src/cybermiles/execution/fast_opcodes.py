"""Faster equivalents of py-evm's simple opcodes, for :mod:`cybermiles.execution.interpreter`.

Each function here does what the py-evm logic function it replaces does (the mapping is
:data:`REPLACES`), on the same data: py-evm's stack list (``Stack.values``, whose items are
``int`` or big-endian ``bytes``), the computation's memory bytearray and its gas meter. What
they save is py-evm's layers of method calls and checks per stack access: an ``ADD`` here is
one call instead of about ten.

The rules they keep:

- results are reduced to 256 bits, every push checks the 1,024-item limit (``FullStack``);
- a pop from an empty stack raises ``IndexError``, which the interpreter turns into py-evm's
  ``InsufficientStack`` (both burn the frame's gas, as in py-evm);
- bytes items are read as big-endian integers; items pushed here are always ``int``. Every
  py-evm opcode that pops bytes pads or truncates them (addresses, ``MSTORE``, ``TSTORE``),
  so an ``int`` and its big-endian bytes are interchangeable on the stack;
- memory grows through py-evm's ``extend_memory`` (same gas, same ``OutOfGas``), only when
  the access ends past the current size (memory size is always a multiple of 32); other
  dynamic gas (``KECCAK256``'s per-word cost) goes through py-evm's gas meter.

The handlers repeat their pop-and-convert lines instead of sharing a helper on purpose: a
helper call would cost about as much as the handler saves.

A handler is ``handler(computation, stack, code, pc) -> pc``: ``code`` is the frame's bytecode
and ``pc`` the position after the opcode byte; it returns where execution continues. The fixed
gas (``gas_cost`` of py-evm's opcode) is charged by the interpreter before the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth.constants import GAS_SHA3WORD
from eth.exceptions import FullStack, InvalidInstruction, InvalidJumpDestination
from eth.vm.logic import (
    arithmetic,
    comparison,
    context,
    duplication,
    flow,
    memory,
    stack,
    swap,
)
from eth.vm.logic import sha3 as keccak_logic

from cybermiles.crypto.keccak import keccak256

Handler = Callable[[Any, list[Any], bytes, int], int]

UINT256_MAX = 2**256 - 1
UINT256_CEILING = 2**256
SIGN_BIT = 2**255
STACK_LIMIT = 1024
JUMPDEST = 0x5B

_from_bytes = int.from_bytes


# --------------------------------------------------------------------------- arithmetic


def add(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    st.append((a + b) & UINT256_MAX)
    return pc


def sub(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    st.append((a - b) & UINT256_MAX)
    return pc


def mul(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    st.append((a * b) & UINT256_MAX)
    return pc


def div(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    st.append(a // b if b else 0)
    return pc


def mod(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    st.append(a % b if b else 0)
    return pc


def shl(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    shift = st.pop()
    value = st.pop()
    if shift.__class__ is bytes:
        shift = _from_bytes(shift, "big")
    if value.__class__ is bytes:
        value = _from_bytes(value, "big")
    st.append((value << shift) & UINT256_MAX if shift < 256 else 0)
    return pc


def shr(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    shift = st.pop()
    value = st.pop()
    if shift.__class__ is bytes:
        shift = _from_bytes(shift, "big")
    if value.__class__ is bytes:
        value = _from_bytes(value, "big")
    st.append(value >> shift if shift < 256 else 0)
    return pc


def sar(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    shift = st.pop()
    value = st.pop()
    if shift.__class__ is bytes:
        shift = _from_bytes(shift, "big")
    if value.__class__ is bytes:
        value = _from_bytes(value, "big")
    if value >= SIGN_BIT:
        value -= UINT256_CEILING
    if shift >= 256:
        st.append(0 if value >= 0 else UINT256_MAX)
    else:
        st.append((value >> shift) & UINT256_MAX)
    return pc


# --------------------------------------------------------------------------- comparison, bits


def lt(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    st.append(1 if a < b else 0)
    return pc


def gt(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    st.append(1 if a > b else 0)
    return pc


def slt(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    # flipping the sign bit maps two's complement order onto unsigned order
    st.append(1 if (a ^ SIGN_BIT) < (b ^ SIGN_BIT) else 0)
    return pc


def sgt(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    st.append(1 if (a ^ SIGN_BIT) > (b ^ SIGN_BIT) else 0)
    return pc


def eq(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    st.append(1 if a == b else 0)
    return pc


def iszero(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    st.append(0 if a else 1)
    return pc


def and_op(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    st.append(a & b)
    return pc


def or_op(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    st.append(a | b)
    return pc


def xor(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    b = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    if b.__class__ is bytes:
        b = _from_bytes(b, "big")
    st.append(a ^ b)
    return pc


def not_op(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    a = st.pop()
    if a.__class__ is bytes:
        a = _from_bytes(a, "big")
    st.append(UINT256_MAX - a)
    return pc


def byte_op(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    position = st.pop()
    value = st.pop()
    if position.__class__ is bytes:
        position = _from_bytes(position, "big")
    if value.__class__ is bytes:
        value = _from_bytes(value, "big")
    st.append((value >> (8 * (31 - position))) & 0xFF if position < 32 else 0)
    return pc


# --------------------------------------------------------------------------- stack


def pop(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    st.pop()
    return pc


def push_n(size: int) -> Handler:
    """PUSH``size``: the next ``size`` code bytes, zero-padded on the right past the end."""

    def push(c: Any, st: list[Any], code: bytes, pc: int) -> int:
        if len(st) >= STACK_LIMIT:
            raise FullStack("Stack limit reached")
        end = pc + size
        value = code[pc:end]
        if len(value) != size:
            value = value.ljust(size, b"\x00")
        st.append(_from_bytes(value, "big"))
        return end

    push.__name__ = f"push{size}"
    return push


def dup_n(position: int) -> Handler:
    """DUP``position``: push a copy of the ``position``-th item from the top."""
    index = -position

    def dup(c: Any, st: list[Any], code: bytes, pc: int) -> int:
        if len(st) >= STACK_LIMIT:
            raise FullStack("Stack limit reached")
        st.append(st[index])
        return pc

    dup.__name__ = f"dup{position}"
    return dup


def swap_n(position: int) -> Handler:
    """SWAP``position``: exchange the top item with the one ``position`` below it."""
    index = -position - 1

    def swap(c: Any, st: list[Any], code: bytes, pc: int) -> int:
        st[-1], st[index] = st[index], st[-1]
        return pc

    swap.__name__ = f"swap{position}"
    return swap


# --------------------------------------------------------------------------- flow


def _jump_target(c: Any, code: bytes, dest: int) -> int:
    """``dest`` if it is a JUMPDEST opcode (not PUSH data), else py-evm's errors."""
    if dest >= len(code) or code[dest] != JUMPDEST:
        raise InvalidJumpDestination("Invalid Jump Destination")
    stream = c.code
    if dest not in stream.valid_positions and not stream.is_valid_opcode(dest):
        raise InvalidInstruction("Jump resulted in invalid instruction")
    return dest


def jump(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    dest = st.pop()
    if dest.__class__ is bytes:
        dest = _from_bytes(dest, "big")
    return _jump_target(c, code, dest)


def jumpi(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    dest = st.pop()
    condition = st.pop()
    if condition.__class__ is bytes:
        condition = _from_bytes(condition, "big")
    if not condition:
        return pc
    if dest.__class__ is bytes:
        dest = _from_bytes(dest, "big")
    return _jump_target(c, code, dest)


def jumpdest(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    return pc


def program_counter(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    if len(st) >= STACK_LIMIT:
        raise FullStack("Stack limit reached")
    st.append(pc - 1)
    return pc


def gas(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    if len(st) >= STACK_LIMIT:
        raise FullStack("Stack limit reached")
    st.append(c._gas_meter.gas_remaining)
    return pc


# --------------------------------------------------------------------------- memory


def mload(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    start = st.pop()
    if start.__class__ is bytes:
        start = _from_bytes(start, "big")
    end = start + 32
    mem = c._memory._bytes
    if end > len(mem):
        c.extend_memory(start, 32)
        mem = c._memory._bytes
    st.append(_from_bytes(mem[start:end], "big"))
    return pc


def mstore(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    start = st.pop()
    value = st.pop()
    if start.__class__ is bytes:
        start = _from_bytes(start, "big")
    if value.__class__ is int:
        value = value.to_bytes(32, "big")
    elif len(value) != 32:
        value = value.rjust(32, b"\x00")[-32:]
    end = start + 32
    mem = c._memory._bytes
    if end > len(mem):
        c.extend_memory(start, 32)
        mem = c._memory._bytes
    mem[start:end] = value
    return pc


def mstore8(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    start = st.pop()
    value = st.pop()
    if start.__class__ is bytes:
        start = _from_bytes(start, "big")
    byte = value & 0xFF if value.__class__ is int else (value[-1] if value else 0)
    mem = c._memory._bytes
    if start >= len(mem):
        c.extend_memory(start, 1)
        mem = c._memory._bytes
    mem[start] = byte
    return pc


def sha3(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    """KECCAK256 of memory: expansion gas first, then 6 gas per word, as py-evm charges."""
    start = st.pop()
    size = st.pop()
    if start.__class__ is bytes:
        start = _from_bytes(start, "big")
    if size.__class__ is bytes:
        size = _from_bytes(size, "big")
    if not size:
        data = b""
    else:
        end = start + size
        mem = c._memory._bytes
        if end > len(mem):
            c.extend_memory(start, size)
            mem = c._memory._bytes
        data = bytes(mem[start:end])
    c._gas_meter.consume_gas(GAS_SHA3WORD * ((size + 31) // 32), "SHA3: word gas cost")
    st.append(_from_bytes(keccak256(data), "big"))
    return pc


# --------------------------------------------------------------------------- call context


def calldataload(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    start = st.pop()
    if start.__class__ is bytes:
        start = _from_bytes(start, "big")
    word = c.msg.data_as_bytes[start : start + 32]
    if len(word) != 32:
        word = word.ljust(32, b"\x00")
    st.append(_from_bytes(word, "big"))
    return pc


def calldatasize(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    if len(st) >= STACK_LIMIT:
        raise FullStack("Stack limit reached")
    st.append(len(c.msg.data))
    return pc


def callvalue(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    if len(st) >= STACK_LIMIT:
        raise FullStack("Stack limit reached")
    st.append(c.msg.value)
    return pc


def caller(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    if len(st) >= STACK_LIMIT:
        raise FullStack("Stack limit reached")
    st.append(c.msg.sender)
    return pc


def address(c: Any, st: list[Any], code: bytes, pc: int) -> int:
    if len(st) >= STACK_LIMIT:
        raise FullStack("Stack limit reached")
    st.append(c.msg.storage_address)
    return pc


# --------------------------------------------------------------------------- the mapping


def _numbered(module: Any, prefix: str, numbers: range, factory: Callable[[int], Handler]) -> dict:
    return {getattr(module, f"{prefix}{n}"): factory(n) for n in numbers}


REPLACES: dict[Callable[..., None], Handler] = {
    arithmetic.add: add,
    arithmetic.sub: sub,
    arithmetic.mul: mul,
    arithmetic.div: div,
    arithmetic.mod: mod,
    arithmetic.shl: shl,
    arithmetic.shr: shr,
    arithmetic.sar: sar,
    comparison.lt: lt,
    comparison.gt: gt,
    comparison.slt: slt,
    comparison.sgt: sgt,
    comparison.eq: eq,
    comparison.iszero: iszero,
    comparison.and_op: and_op,
    comparison.or_op: or_op,
    comparison.xor: xor,
    comparison.not_op: not_op,
    comparison.byte_op: byte_op,
    stack.pop: pop,
    flow.jump: jump,
    flow.jumpi: jumpi,
    flow.jumpdest: jumpdest,
    flow.program_counter: program_counter,
    flow.gas: gas,
    memory.mload: mload,
    memory.mstore: mstore,
    memory.mstore8: mstore8,
    keccak_logic.sha3: sha3,
    context.calldataload: calldataload,
    context.calldatasize: calldatasize,
    context.callvalue: callvalue,
    context.caller: caller,
    context.address: address,
    **_numbered(stack, "push", range(33), push_n),
    **_numbered(duplication, "dup", range(1, 17), dup_n),
    **_numbered(swap, "swap", range(1, 17), swap_n),
}
"""py-evm logic function -> the handler doing the same."""
