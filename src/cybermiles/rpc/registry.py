"""The method table: JSON-RPC method name -> synchronous handler ``(node, *params)``.

Rules:

* A handler's arity comes from its signature: positional parameters after ``node`` without a
  default are required, those with a default optional (missing arguments take the default).
  ``*args`` / ``**kwargs`` are not allowed, so every argument has a name for error messages.
* A handler that declares a keyword-only ``session`` parameter also receives the client's
  :class:`~cybermiles.rpc.session.Session` (WebSocket subscriptions hang on it).
* Each ``rpc/methods/<namespace>.py`` module fills its own ``MethodTable``; ``rpc.methods``
  merges them. A name may be registered once.
* A method may also register a batch preparation ``(node, [params, ...]) -> context manager``:
  before a JSON-RPC batch runs, it gets the params of every request of the batch calling that
  method, and the batch runs inside the context it returns. It is an optimisation only (e.g.
  decoding all raw transactions together): each request still runs through its handler, with
  the same result and errors as alone, and a preparation that fails is skipped.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

Handler = Callable[..., Any]
BatchPrep = Callable[[Any, list[list[Any]]], AbstractContextManager[Any]]


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    handler: Handler
    arg_names: tuple[str, ...]
    required: int
    wants_session: bool


def describe(name: str, handler: Handler) -> Method:
    """Read a handler's arity from its signature (see the module docstring)."""
    params = list(inspect.signature(handler).parameters.values())
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise TypeError(f"{name}: a handler's first parameter must be the node")
    arg_names: list[str] = []
    required = 0
    wants_session = False
    for param in params[1:]:
        if param.kind is inspect.Parameter.KEYWORD_ONLY and param.name == "session":
            wants_session = True
        elif param.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            if param.default is inspect.Parameter.empty:
                if len(arg_names) > required:
                    raise TypeError(f"{name}: required argument {param.name} after optional")
                required += 1
            arg_names.append(param.name)
        else:
            raise TypeError(f"{name}: unsupported parameter {param.name} ({param.kind})")
    return Method(name, handler, tuple(arg_names), required, wants_session)


class MethodTable:
    """Named handlers; ``@table.method("eth_chainId")`` registers one."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}
        self.batch_preps: dict[str, BatchPrep] = {}

    def method(self, name: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(name, handler)
            return handler

        return register

    def batch_prep(self, name: str) -> Callable[[BatchPrep], BatchPrep]:
        """Register the batch preparation of method ``name`` (see the module docstring)."""

        def register(prep: BatchPrep) -> BatchPrep:
            if name in self.batch_preps:
                raise ValueError(f"batch preparation of {name} registered twice")
            self.batch_preps[name] = prep
            return prep

        return register

    def add(self, name: str, handler: Handler) -> None:
        if name in self._methods:
            raise ValueError(f"RPC method {name} registered twice")
        self._methods[name] = describe(name, handler)

    def update(self, other: MethodTable) -> None:
        for method in other:
            self.add(method.name, method.handler)
        for name, prep in other.batch_preps.items():
            self.batch_prep(name)(prep)

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def names(self) -> list[str]:
        return sorted(self._methods)

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __iter__(self) -> Iterator[Method]:
        return iter(self._methods.values())

    def __len__(self) -> int:
        return len(self._methods)
