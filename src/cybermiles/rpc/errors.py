"""JSON-RPC error codes and the exceptions handlers raise.

Codes (JSON-RPC 2.0, messages as geth words them)::

    -32700  parse error        the body is not valid JSON
    -32600  invalid request    not a request object, empty or oversized batch, body too large
    -32601  method not found   "the method X does not exist/is not available"
    -32602  invalid params     wrong argument count, or an argument that does not parse
                               ("invalid argument 1 (block): ..." names it by index and name)
    -32603  internal error     an unexpected exception: logged with its traceback, the client
                               only sees "internal error"
    -32000  server error       the node refuses the request: a rejected transaction (the
                               ``InvalidTransaction`` message, geth's wording), "header not
                               found", state outside the kept history window

Handlers raise :class:`RpcError` subclasses; the dispatcher maps ``InvalidTransaction`` and
``StateUnavailable`` to -32000 itself, and anything else to -32603.
"""

from __future__ import annotations

from typing import Any, ClassVar

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000


class RpcError(Exception):
    """An error the client sees as ``{"code", "message"[, "data"]}``."""

    code: ClassVar[int] = INTERNAL_ERROR

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(RpcError):
    code = PARSE_ERROR


class InvalidRequest(RpcError):
    code = INVALID_REQUEST


class MethodNotFound(RpcError):
    code = METHOD_NOT_FOUND

    def __init__(self, method: str) -> None:
        super().__init__(f"the method {method} does not exist/is not available")


class InvalidParams(RpcError):
    code = INVALID_PARAMS


class ParamError(InvalidParams):
    """One argument does not parse. The dispatcher adds its position (see ``with_index``)."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"invalid argument {name!r}: {detail}")
        self.name = name
        self.detail = detail

    def with_index(self, index: int) -> InvalidParams:
        return InvalidParams(f"invalid argument {index} ({self.name}): {self.detail}")


class InternalError(RpcError):
    code = INTERNAL_ERROR


class ServerError(RpcError):
    code = SERVER_ERROR


class HeaderNotFound(ServerError):
    """A state read names a block this node does not have (geth's wording)."""

    def __init__(self, by_hash: bool = False) -> None:
        super().__init__("header for hash not found" if by_hash else "header not found")
