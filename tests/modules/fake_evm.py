"""A stand-in for py-evm's computation, to call a module's precompile entry point directly.

It has exactly what ``Module.__call__`` and ``CallContext`` read: the message (sender, value,
data, static flag, code and storage address), the state with its execution context, gas and
logs. Value transfer and rollback on revert are the caller's business (py-evm does both).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cybermiles.modules.framework.module import Module
from cybermiles.modules.framework.store import MemoryBackend


@dataclass
class ExecutionContext:
    block_number: int
    timestamp: int


class FakeState(MemoryBackend):
    """py-evm's state as a module sees it: a Backend plus ``execution_context``."""

    def __init__(self, block_number: int = 1, timestamp: int = 1_700_000_000) -> None:
        super().__init__()
        self.execution_context = ExecutionContext(block_number, timestamp)


@dataclass
class FakeMessage:
    sender: bytes
    value: int
    data: bytes
    is_static: bool
    code_address: bytes
    storage_address: bytes


@dataclass
class FakeComputation:
    msg: FakeMessage
    state: FakeState
    gas_used: int = 0
    output: bytes = b""
    logs: list[tuple[bytes, list[int], bytes]] = field(default_factory=list)

    def consume_gas(self, amount: int, reason: str) -> None:
        self.gas_used += amount

    def add_log_entry(self, address: bytes, topics: list[int], data: bytes) -> None:
        self.logs.append((address, topics, data))


def computation_for(
    module: Module,
    state: FakeState,
    sender: bytes,
    data: bytes,
    *,
    value: int = 0,
    static: bool = False,
) -> FakeComputation:
    """A computation calling ``module`` directly (CALL or STATICCALL) with ``data``."""
    message = FakeMessage(sender, value, data, static, module.address, module.address)
    return FakeComputation(message, state)
