"""A native module as a py-evm precompile: ABI dispatch, fixed gas, reverts with reasons, logs.

A module subclass declares its functions with ``@method("name(types)", gas=..., returns=...)``;
the Solidity signature gives the selector and the argument types (decoded with eth-abi). A call:

1. charges the method's fixed gas (out of gas: the call fails and burns its gas, as in the EVM);
2. reverts with ``Error(string)`` for an unknown selector, a DELEGATECALL or CALLCODE, value
   sent to a non-payable method,
   a state change in a static call, undecodable arguments, or any ``ModuleError`` the handler
   raises — the EVM reverts the call's state changes and logs, and the caller gets the reason;
3. otherwise returns the ABI-encoded result.

Value sent with the call is already in the module's balance when the handler runs (py-evm moves
it before the precompile). Handlers see the state through ``CallContext.backend`` — py-evm's
journaled state — so nested calls, reverts and ``eth_call`` behave as for contracts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from eth.exceptions import Revert
from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_abi.grammar import parse
from eth_utils import function_signature_to_4byte_selector

from cybermiles.crypto.keccak import keccak256
from cybermiles.modules.framework.store import Backend

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)


class ModuleError(Exception):
    """A call that must revert; the message is the revert reason callers see."""


def revert_data(reason: str) -> bytes:
    """ABI ``Error(string)`` revert data, what Solidity's ``require(..., reason)`` returns."""
    return ERROR_SELECTOR + encode(["string"], [reason])


def argument_types(signature: str) -> tuple[str, ...]:
    """The canonical argument types of a Solidity signature ``name(t1,t2,...)``."""
    open_at = signature.index("(")
    if signature[open_at:] == "()":
        return ()  # eth-abi's grammar has no empty tuple
    tuple_type = parse(signature[open_at:])
    return tuple(component.to_type_str() for component in tuple_type.components)


@dataclass(frozen=True, slots=True)
class MethodSpec:
    signature: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    gas: int
    payable: bool
    view: bool
    handler: Callable[..., Any]


def method(
    signature: str,
    *,
    gas: int,
    returns: Sequence[str] = (),
    payable: bool = False,
    view: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a module function; see the module docstring."""
    if payable and view:
        raise ValueError(f"{signature}: a view cannot be payable")

    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        handler.__module_method__ = MethodSpec(  # type: ignore[attr-defined]
            signature,
            function_signature_to_4byte_selector(signature),
            argument_types(signature),
            tuple(returns),
            gas,
            payable,
            view,
            handler,
        )
        return handler

    return wrap


def event_topic(signature: str) -> int:
    return int.from_bytes(keccak256(signature.encode()), "big")


class CallContext:
    """What a handler knows about the call: caller, value, block, state, and how to log."""

    def __init__(self, computation: Any, address: bytes) -> None:
        self._computation = computation
        msg = computation.msg
        context = computation.state.execution_context
        self.address = address
        self.sender: bytes = bytes(msg.sender)
        self.value: int = msg.value
        self.number: int = context.block_number
        self.timestamp: int = context.timestamp
        self.backend: Backend = computation.state

    def emit(
        self,
        signature: str,
        indexed: Sequence[tuple[str, Any]] = (),
        data: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """Log event ``signature`` with ``indexed`` value-type topics and ABI-encoded ``data``."""
        topics = [event_topic(signature)]
        topics.extend(int.from_bytes(encode([t], [v]), "big") for t, v in indexed)
        payload = encode([t for t, _ in data], [v for _, v in data]) if data else b""
        self._computation.add_log_entry(self.address, topics, payload)


class Module:
    """Base of every native module; subclasses set ``address`` and declare ``@method``s."""

    address: ClassVar[bytes]
    name: ClassVar[str]
    _methods: ClassVar[dict[bytes, MethodSpec]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._methods = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                spec = getattr(value, "__module_method__", None)
                if spec is not None:
                    cls._methods[spec.selector] = spec

    @classmethod
    def methods(cls) -> dict[bytes, MethodSpec]:
        return dict(cls._methods)

    @classmethod
    def spec(cls, name: str) -> MethodSpec:
        """The method spec whose signature starts with ``name(``."""
        for spec in cls._methods.values():
            if spec.signature.split("(", 1)[0] == name:
                return spec
        raise KeyError(f"{cls.__name__} has no method {name}")

    @classmethod
    def calldata(cls, name: str, *args: Any) -> bytes:
        """The ABI call data for ``name(args)`` (for ``cmt_*`` methods and tests)."""
        spec = cls.spec(name)
        return spec.selector + encode(list(spec.inputs), list(args))

    def __call__(self, computation: Any) -> Any:
        """py-evm precompile entry point."""
        data = bytes(computation.msg.data)
        spec = self._methods.get(data[:4]) if len(data) >= 4 else None
        if spec is not None:
            computation.consume_gas(spec.gas, reason=f"{self.name}.{spec.signature}")
        try:
            computation.output = self._dispatch(computation, spec, data)
        except ModuleError as exc:
            computation.output = revert_data(str(exc))
            raise Revert(str(exc)) from None
        return computation

    def _dispatch(self, computation: Any, spec: MethodSpec | None, data: bytes) -> bytes:
        if spec is None:
            if len(data) < 4:
                raise ModuleError(f"{self.name}: call data has no function selector")
            raise ModuleError(f"{self.name}: unknown function selector 0x{data[:4].hex()}")
        msg = computation.msg
        if msg.code_address != msg.storage_address:
            # DELEGATECALL / CALLCODE would run the module in another account's context with
            # a msg.value that never reached the module's balance.
            raise ModuleError(f"{self.name}: DELEGATECALL and CALLCODE are not supported")
        if msg.value and not spec.payable:
            raise ModuleError(f"{self.name}.{spec.signature.split('(')[0]}: not payable")
        if msg.is_static and not spec.view:
            raise ModuleError(
                f"{self.name}.{spec.signature.split('(')[0]}: state change in a static call"
            )
        try:
            args = decode(list(spec.inputs), data[4:], strict=False)
        except (DecodingError, OverflowError, ValueError) as exc:
            raise ModuleError(
                f"{self.name}: invalid arguments for {spec.signature}: {exc}"
            ) from None
        result = spec.handler(self, CallContext(computation, self.address), *args)
        if not spec.outputs:
            return b""
        values = result if len(spec.outputs) > 1 else (result,)
        return encode(list(spec.outputs), list(values))
