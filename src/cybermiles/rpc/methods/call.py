"""eth_call, eth_estimateGas, eth_createAccessList: simulated transactions, as geth answers.

Execution rules are those of ``execution/call.py``. Here:

* Arguments: ``(transaction, block="latest", state_overrides=None)``. ``block`` is a tag,
  number, hash or EIP-1898 object (state getters' rules, ``rpc.lookup``). The transaction object
  is geth's ``TransactionArgs``: from, to, gas, gasPrice, maxFeePerGas, maxPriorityFeePerGas,
  value, nonce, data / input, accessList, authorizationList, chainId; other fields (type, ...)
  are ignored, as geth does. ``data`` and ``input`` must agree; ``chainId`` must be the node's;
  blob fields are refused. State overrides map an address to ``{balance, nonce, code, state |
  stateDiff}`` (storage keys and values are 32-byte hex); ``movePrecompileToAddress`` is not
  supported.
* A malformed argument is -32602. A call that cannot start (funds, intrinsic gas, fee fields,
  both data and input, wrong chainId, state and stateDiff together, timeout) is -32000 with
  geth's message.
* A revert is error code 3, message "execution reverted" plus ": <reason>" when the revert data
  is ``Error(string)`` or ``Panic(uint256)``, data the revert data as hex ("0x" when empty):
  the shape ethers, viem and web3.py decode reasons and custom errors from. Any other execution
  failure ("out of gas", "invalid opcode: INVALID", ...) is -32000 with geth's message.
* eth_estimateGas answers a quantity; a transaction that fails at the highest gas allowed fails
  the same way as eth_call (code 3 for a revert), or with "gas required exceeds allowance (N)".
* eth_createAccessList answers ``{accessList, gasUsed[, error]}``; ``error`` is the final run's
  execution error ("execution reverted", ...) and is absent on success.
* eth_fillTransaction is not served (-32601).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

from eth.vm.forks.prague.transactions import Authorization

from cybermiles.chain.transactions import AccessList
from cybermiles.crypto.address import to_checksum
from cybermiles.execution.call import (
    ZERO_ADDRESS,
    AccountOverride,
    CallEnv,
    CallFailed,
    CallRequest,
    CallResult,
    create_access_list,
    estimate_gas,
    revert_message,
    simulate,
)
from cybermiles.rpc import format as fmt
from cybermiles.rpc import lookup
from cybermiles.rpc import params as p
from cybermiles.rpc.errors import HeaderNotFound, ParamError, RpcError, ServerError
from cybermiles.rpc.registry import MethodTable
from cybermiles.state.view import StateView

methods = MethodTable()

T = TypeVar("T")


class ExecutionReverted(RpcError):
    """geth's revertError: code 3, the revert data as ``data``."""

    code = 3


# --- methods ----------------------------------------------------------------------------------


@methods.method("eth_call")
def call(node: Any, transaction: Any, block: Any = None, state_overrides: Any = None) -> str:
    request = call_request(transaction, "transaction", node.chain_id)
    ref = p.block_ref(block, "block")
    overrides = parse_state_overrides(state_overrides, "state_overrides")
    with simulation(node, ref) as (view, env):
        result = simulate(view, env, request, overrides=overrides)
    if not result.success:
        raise failure(result)
    return fmt.data(result.output)


@methods.method("eth_estimateGas")
def estimate(node: Any, transaction: Any, block: Any = None, state_overrides: Any = None) -> str:
    request = call_request(transaction, "transaction", node.chain_id)
    ref = p.block_ref(block, "block")
    overrides = parse_state_overrides(state_overrides, "state_overrides")
    with simulation(node, ref) as (view, env):
        try:
            gas = estimate_gas(view, env, request, overrides=overrides)
        except CallFailed as exc:
            raise failure(exc.result) from None
    return fmt.quantity(gas)


@methods.method("eth_createAccessList")
def access_list(
    node: Any, transaction: Any, block: Any = None, state_overrides: Any = None
) -> fmt.Json:
    request = call_request(transaction, "transaction", node.chain_id)
    ref = p.block_ref(block, "block")
    overrides = parse_state_overrides(state_overrides, "state_overrides")
    with simulation(node, ref) as (view, env):
        found = create_access_list(view, env, request, overrides=overrides)
    out: fmt.Json = {
        "accessList": [
            {"address": fmt.address(address), "storageKeys": [fmt.word(key) for key in keys]}
            for address, keys in found.access_list
        ],
        "gasUsed": fmt.quantity(found.gas_used),
    }
    if found.error is not None:
        out["error"] = found.error
    return out


@contextmanager
def simulation(node: Any, ref: p.BlockRef) -> Iterator[tuple[StateView, CallEnv]]:
    """The state ``ref`` names and the block context of the same height."""
    with lookup.state(node, ref) as view:
        blocks = node.chain.blocks
        header = blocks.header(view.height)
        if header is None:
            raise HeaderNotFound()
        env = CallEnv.from_header(header, node.chain_id, blocks.header)
        if node.chain.unlimited_contract_size:
            env = replace(env, unlimited_code_size=True)
        yield view, env


def failure(result: CallResult) -> RpcError:
    """The JSON-RPC error of a failed execution (geth's shapes)."""
    if result.reverted:
        return ExecutionReverted(revert_message(result.output), fmt.data(result.output))
    return ServerError(result.error or "execution failed")


# --- arguments --------------------------------------------------------------------------------


def _field(obj: dict[str, Any], key: str, name: str, parse: Callable[[Any, str], T]) -> T | None:
    value = obj.get(key)
    return None if value is None else parse(value, f"{name}.{key}")


def _object(value: Any, name: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParamError(name, f"expected {what} object")
    return value


def _array(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ParamError(name, "expected an array")
    return value


def call_request(value: Any, name: str, chain_id: int) -> CallRequest:
    """geth's ``TransactionArgs`` as a :class:`CallRequest` (see the module docstring)."""
    tx = _object(value, name, "a transaction")
    data = _field(tx, "data", name, p.data)
    input_ = _field(tx, "input", name, p.data)
    if data is not None and input_ is not None and data != input_:
        raise ServerError(
            'both "data" and "input" are set and not equal. Please use "input" to pass '
            "transaction call data"
        )
    chain = _field(tx, "chainId", name, p.quantity)
    if chain is not None and chain != chain_id:
        raise ServerError(f"chainId does not match node's (have={chain}, want={chain_id})")
    if tx.get("blobVersionedHashes") or tx.get("blobs"):
        raise ParamError(name, "blob transactions are not supported")
    return CallRequest(
        sender=_field(tx, "from", name, p.address) or ZERO_ADDRESS,
        to=_field(tx, "to", name, p.address),
        gas=_field(tx, "gas", name, p.uint64),
        gas_price=_field(tx, "gasPrice", name, p.quantity),
        max_fee_per_gas=_field(tx, "maxFeePerGas", name, p.quantity),
        max_priority_fee_per_gas=_field(tx, "maxPriorityFeePerGas", name, p.quantity),
        value=_field(tx, "value", name, p.quantity) or 0,
        data=(input_ if input_ is not None else data) or b"",
        nonce=_field(tx, "nonce", name, p.uint64),
        access_list=_field(tx, "accessList", name, parse_access_list) or (),
        authorization_list=_field(tx, "authorizationList", name, parse_authorizations) or (),
    )


def parse_access_list(value: Any, name: str) -> AccessList:
    entries = []
    for i, item in enumerate(_array(value, name)):
        where = f"{name}[{i}]"
        entry = _object(item, where, "an access list entry")
        address = p.address(entry.get("address"), f"{where}.address")
        keys = _field(entry, "storageKeys", where, _array) or []
        slots = tuple(
            int.from_bytes(p.hash32(key, f"{where}.storageKeys[{j}]"), "big")
            for j, key in enumerate(keys)
        )
        entries.append((address, slots))
    return tuple(entries)


def parse_authorizations(value: Any, name: str) -> tuple[Authorization, ...]:
    out = []
    for i, item in enumerate(_array(value, name)):
        where = f"{name}[{i}]"
        auth = _object(item, where, "an authorization")
        out.append(
            Authorization(
                chain_id=_required(auth, "chainId", where, p.quantity),
                address=_required(auth, "address", where, p.address),
                nonce=_required(auth, "nonce", where, p.uint64),
                y_parity=_required(auth, "yParity", where, p.quantity),
                r=_required(auth, "r", where, p.quantity),
                s=_required(auth, "s", where, p.quantity),
            )
        )
    return tuple(out)


def _required(obj: dict[str, Any], key: str, name: str, parse: Callable[[Any, str], T]) -> T:
    value = _field(obj, key, name, parse)
    if value is None:
        raise ParamError(f"{name}.{key}", "missing required field")
    return value


def _storage(value: Any, name: str) -> dict[int, int]:
    slots = _object(value, name, "a storage")
    return {
        int.from_bytes(p.hash32(key, f"{name}.{key}"), "big"): int.from_bytes(
            p.hash32(word, f"{name}.{key}"), "big"
        )
        for key, word in slots.items()
    }


def parse_state_overrides(value: Any, name: str) -> dict[bytes, AccountOverride] | None:
    """geth's ``StateOverride``: address -> {balance, nonce, code, state | stateDiff}."""
    if value is None:
        return None
    overrides: dict[bytes, AccountOverride] = {}
    for key, item in _object(value, name, "a state override").items():
        where = f"{name}.{key}"
        address = p.address(key, where)
        entry = _object(item, where, "an account override")
        if entry.get("movePrecompileToAddress") is not None:
            raise ParamError(f"{where}.movePrecompileToAddress", "not supported")
        state = _field(entry, "state", where, _storage)
        diff = _field(entry, "stateDiff", where, _storage)
        if state is not None and diff is not None:
            raise ServerError(f"account {to_checksum(address)} has both 'state' and 'stateDiff'")
        overrides[address] = AccountOverride(
            balance=_field(entry, "balance", where, p.quantity),
            nonce=_field(entry, "nonce", where, p.uint64),
            code=_field(entry, "code", where, p.data),
            state=state,
            state_diff=diff,
        )
    return overrides
