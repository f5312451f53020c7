"""Dev-only methods (Hardhat's ``evm_*`` / ``hardhat_*``), served by development chains only.

``methods`` is registered when ``node.dev``; other nodes register ``refusals`` instead, which
answer -32601 saying that dev methods need a devnet. The work is ``node.dev.DevTools``'s (its
docstring has the rules); here are the JSON shapes, as Hardhat answers them:

* evm_mine([timestamp]) -> "0"; hardhat_mine([blocks=0x1, interval=0x1]) -> true.
* evm_setAutomine(bool) -> true.
* evm_increaseTime(seconds) -> the total time offset as a decimal string.
* evm_setNextBlockTimestamp(timestamp) -> the timestamp as a decimal string; a timestamp not
  above the head's is -32000 "Timestamp T is lower than or equal to previous block's ...".
* hardhat_setBalance(address, quantity), hardhat_setCode(address, data),
  hardhat_setNonce(address, quantity), hardhat_setStorageAt(address, slot, 32-byte value)
  -> true, after mining the block carrying the edit.
* hardhat_impersonateAccount(address) -> true; hardhat_stopImpersonatingAccount(address) ->
  whether it was impersonated.
* evm_snapshot() -> id (quantity); evm_revert(id) -> true, or false for an unknown id.

Seconds and timestamps are hex quantities or JSON integers (Hardhat takes both). A refused
operation (``DevError``) is -32000 with its message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from cybermiles.node.dev import DevError, DevTools
from cybermiles.rpc import format as fmt
from cybermiles.rpc import params as p
from cybermiles.rpc.errors import MethodNotFound, ParamError, RpcError, ServerError
from cybermiles.rpc.registry import MethodTable

methods = MethodTable()
refusals = MethodTable()

T = TypeVar("T")


class DevMethodNotFound(MethodNotFound):
    """A dev method called on a node that is not a development chain."""

    def __init__(self, method: str) -> None:
        RpcError.__init__(
            self,
            f"the method {method} does not exist/is not available: dev methods are served by "
            "development chains only (cmt devnet)",
        )


def _tools(node: Any) -> DevTools:
    tools = node.dev_tools
    assert tools is not None, "dev methods are registered on dev nodes only"
    return tools


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except DevError as exc:
        raise ServerError(str(exc)) from None


def _integer(value: Any, name: str) -> int:
    """A hex quantity or a non-negative JSON integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ParamError(name, "must not be negative")
        return value
    return p.uint64(value, name)


# --- mining and time --------------------------------------------------------------------------


@methods.method("evm_mine")
def evm_mine(node: Any, timestamp: Any = None) -> str:
    ts = None if timestamp is None else _integer(timestamp, "timestamp")
    _run(lambda: _tools(node).mine(ts))
    return "0"


@methods.method("hardhat_mine")
def hardhat_mine(node: Any, blocks: Any = None, interval: Any = None) -> bool:
    count = 1 if blocks is None else p.uint64(blocks, "blocks")
    seconds = 1 if interval is None else p.uint64(interval, "interval")
    _run(lambda: _tools(node).mine_blocks(count, seconds))
    return True


@methods.method("evm_setAutomine")
def evm_set_automine(node: Any, enabled: Any) -> bool:
    _tools(node).set_automine(p.boolean(enabled, "enabled"))
    return True


@methods.method("evm_increaseTime")
def evm_increase_time(node: Any, seconds: Any) -> str:
    amount = _integer(seconds, "seconds")
    return str(_run(lambda: _tools(node).increase_time(amount)))


@methods.method("evm_setNextBlockTimestamp")
def evm_set_next_block_timestamp(node: Any, timestamp: Any) -> str:
    ts = _integer(timestamp, "timestamp")
    _run(lambda: _tools(node).set_next_timestamp(ts))
    return str(ts)


# --- state edits ------------------------------------------------------------------------------


@methods.method("hardhat_setBalance")
def hardhat_set_balance(node: Any, address: Any, balance: Any) -> bool:
    addr, amount = p.address(address, "address"), p.quantity(balance, "balance")
    _run(lambda: _tools(node).set_balance(addr, amount))
    return True


@methods.method("hardhat_setCode")
def hardhat_set_code(node: Any, address: Any, code: Any) -> bool:
    addr, data = p.address(address, "address"), p.data(code, "code")
    _run(lambda: _tools(node).set_code(addr, data))
    return True


@methods.method("hardhat_setNonce")
def hardhat_set_nonce(node: Any, address: Any, nonce: Any) -> bool:
    addr, value = p.address(address, "address"), p.uint64(nonce, "nonce")
    _run(lambda: _tools(node).set_nonce(addr, value))
    return True


@methods.method("hardhat_setStorageAt")
def hardhat_set_storage_at(node: Any, address: Any, slot: Any, value: Any) -> bool:
    addr, key = p.address(address, "address"), p.storage_slot(slot, "slot")
    word = int.from_bytes(p.hash32(value, "value"), "big")
    _run(lambda: _tools(node).set_storage_at(addr, key, word))
    return True


# --- impersonation ----------------------------------------------------------------------------


@methods.method("hardhat_impersonateAccount")
def hardhat_impersonate_account(node: Any, address: Any) -> bool:
    node.accounts.impersonate(p.address(address, "address"))
    return True


@methods.method("hardhat_stopImpersonatingAccount")
def hardhat_stop_impersonating_account(node: Any, address: Any) -> bool:
    return bool(node.accounts.stop_impersonating(p.address(address, "address")))


# --- snapshots --------------------------------------------------------------------------------


@methods.method("evm_snapshot")
def evm_snapshot(node: Any) -> str:
    return fmt.quantity(_run(lambda: _tools(node).snapshot()))


@methods.method("evm_revert")
def evm_revert(node: Any, snapshot_id: Any) -> bool:
    number = p.quantity(snapshot_id, "snapshot_id")
    return _run(lambda: _tools(node).revert(number))


# --- refusals on other nodes ------------------------------------------------------------------


def _refusal(name: str) -> Callable[..., Any]:
    def refuse(
        node: Any, a: Any = None, b: Any = None, c: Any = None, d: Any = None
    ) -> Any:  # up to four arguments (every dev method's most) get the same answer
        raise DevMethodNotFound(name)

    return refuse


for _method in methods:
    refusals.add(_method.name, _refusal(_method.name))
