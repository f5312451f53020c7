"""The EVM interpreter loop: py-evm's opcodes, with the simple ones run by faster equivalents.

:func:`execute_code` runs one call frame's bytecode as py-evm's ``apply_computation`` loop
does (read the opcode at the program counter, advance past it, charge its gas, run it), with
two changes that only affect speed:

- the program counter is a local variable, written back to py-evm's ``CodeStream`` only
  around the opcodes py-evm runs itself (which may read or move it);
- an opcode whose py-evm implementation is a ``_FastOpcode`` (base gas charged by the loop)
  with a replacement in :data:`~cybermiles.execution.fast_opcodes.REPLACES` runs that
  replacement; the gas check and ``OutOfGas`` are py-evm's. Every other opcode (storage,
  calls, creates, logs, halts) is called exactly as py-evm calls it.

Running past the end of the code is ``STOP``. The table is built from the computation's own
opcode table, so a fork that changes an opcode's logic falls back to py-evm for it.
"""

from __future__ import annotations

from typing import Any

from eth.exceptions import InsufficientStack, OutOfGas
from eth.vm.logic.invalid import InvalidOpcode
from eth.vm.opcode import _FastOpcode

from .fast_opcodes import REPLACES, Handler

FastTable = tuple[list[Handler | None], list[int]]
_tables: dict[int, tuple[dict[int, Any], FastTable]] = {}


def fast_table(opcodes: dict[int, Any]) -> FastTable:
    """Per opcode byte: the replacement handler (or None) and its fixed gas cost."""
    cached = _tables.get(id(opcodes))
    if cached is not None and cached[0] is opcodes:
        return cached[1]
    handlers: list[Handler | None] = [None] * 256
    costs = [0] * 256
    for byte, opcode_fn in opcodes.items():
        if type(opcode_fn) is _FastOpcode and opcode_fn.logic_fn in REPLACES:
            handlers[byte] = REPLACES[opcode_fn.logic_fn]
            costs[byte] = opcode_fn.gas_cost
    _tables[id(opcodes)] = (opcodes, (handlers, costs))
    return handlers, costs


def _out_of_gas(cost: int, remaining: int, opcode_fn: Any) -> OutOfGas:
    return OutOfGas(
        f"Out of gas: Needed {cost} - Remaining {remaining} - Reason: {opcode_fn.mnemonic}"
    )


def execute_code(computation: Any) -> None:
    """Run ``computation``'s code from its program counter until it ends; a halting opcode
    raises py-evm's ``Halt`` and errors raise py-evm's ``VMError`` s, as in py-evm's loop."""
    opcodes = computation.opcodes
    handlers, costs = fast_table(opcodes)
    meter = computation._gas_meter
    stream = computation.code
    code = stream._raw_code_bytes
    end = len(code)
    stack = computation._stack.values
    pc = stream.program_counter
    while pc < end:
        opcode = code[pc]
        pc += 1
        handler = handlers[opcode]
        if handler is not None:
            cost = costs[opcode]
            if cost > meter.gas_remaining:
                stream.program_counter = pc
                raise _out_of_gas(cost, meter.gas_remaining, opcodes[opcode])
            meter.gas_remaining -= cost
            try:
                pc = handler(computation, stack, code, pc)
            except IndexError:
                stream.program_counter = pc
                raise InsufficientStack(
                    f"Insufficient stack items for {opcodes[opcode].mnemonic}"
                ) from None
            continue
        stream.program_counter = pc
        opcode_fn = opcodes.get(opcode)
        if opcode_fn is None:
            InvalidOpcode(opcode)(computation)
        elif type(opcode_fn) is _FastOpcode:
            cost = opcode_fn.gas_cost
            if cost > meter.gas_remaining:
                raise _out_of_gas(cost, meter.gas_remaining, opcode_fn)
            meter.gas_remaining -= cost
            opcode_fn.logic_fn(computation)
        else:
            opcode_fn(computation=computation)
        pc = stream.program_counter
    stream.program_counter = pc
