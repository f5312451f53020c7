"""JSON-RPC 2.0 processing, independent of the transport (HTTP and WebSocket share it).

Rules:

* A message is one request object or a batch (array). A body that is not JSON -> -32700; an
  empty batch or one with more than ``max_batch`` entries -> one -32600 error (id null).
* A request needs ``"jsonrpc": "2.0"`` and a string ``method``; its ``id`` may be a string, a
  number or null. Without ``id`` it is a notification: it runs, but gets no response (a batch of
  notifications gets no response at all, returned as ``None``).
* ``params`` is an array, or absent/null for none; by-name (object) params -> -32602.
* Handlers run synchronously, in order; their exceptions map to errors as ``rpc.errors`` says.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import orjson

from cybermiles.chain.errors import InvalidTransaction
from cybermiles.rpc.errors import (
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParamError,
    ParseError,
    RpcError,
    ServerError,
)
from cybermiles.rpc.registry import MethodTable
from cybermiles.rpc.session import Session
from cybermiles.state.view import StateUnavailable

log = logging.getLogger("cybermiles.rpc")

Response = dict[str, Any]


def error_response(request_id: Any, error: RpcError) -> Response:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


class Dispatcher:
    """Runs requests against ``node`` with the handlers of ``methods``."""

    def __init__(self, node: Any, methods: MethodTable, *, max_batch: int) -> None:
        self.node = node
        self.methods = methods
        self.max_batch = max_batch

    def handle_body(self, body: bytes | str, session: Session) -> bytes | None:
        """Decode one transport message, run it, and encode the reply (None: no reply)."""
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            return orjson.dumps(error_response(None, ParseError("parse error")))
        reply = self.handle_message(message, session)
        if reply is None:
            return None
        try:
            return orjson.dumps(reply)
        except orjson.JSONEncodeError:
            return orjson.dumps(self._encodable(reply))

    def _encodable(self, reply: Response | list[Response]) -> Response | list[Response]:
        """Replace each response that cannot be encoded (a handler bug) by an internal error."""
        replies = reply if isinstance(reply, list) else [reply]
        out = []
        for item in replies:
            try:
                orjson.dumps(item)
                out.append(item)
            except orjson.JSONEncodeError:
                log.exception("cannot encode the result of request id %r", item.get("id"))
                out.append(error_response(item.get("id"), InternalError("internal error")))
        return out if isinstance(reply, list) else out[0]

    def handle_message(self, message: Any, session: Session) -> Response | list[Response] | None:
        if not isinstance(message, list):
            return self.handle_request(message, session)
        if not message:
            return error_response(None, InvalidRequest("empty batch"))
        if len(message) > self.max_batch:
            return error_response(
                None,
                InvalidRequest(
                    f"batch too large: {len(message)} requests, at most {self.max_batch} allowed"
                ),
            )
        with self._prepared(message):
            replies = [self.handle_request(item, session) for item in message]
        answered = [reply for reply in replies if reply is not None]
        return answered or None

    def _prepared(self, batch: list[Any]) -> contextlib.ExitStack:
        """The batch preparations of the methods the batch calls, entered (see rpc.registry)."""
        stack = contextlib.ExitStack()
        for name, prep in self.methods.batch_preps.items():
            params = [
                item["params"]
                for item in batch
                if isinstance(item, dict)
                and item.get("method") == name
                and isinstance(item.get("params"), list)
            ]
            if not params:
                continue
            try:
                stack.enter_context(prep(self.node, params))
            except Exception:
                log.exception("batch preparation of %s failed", name)
        return stack

    def handle_request(self, request: Any, session: Session) -> Response | None:
        if not isinstance(request, dict):
            return error_response(None, InvalidRequest("invalid request: expected a JSON object"))
        is_call = "id" in request
        request_id = request.get("id")
        if not _valid_id(request_id):
            return error_response(
                None, InvalidRequest("invalid request: id must be a string, a number or null")
            )
        if request.get("jsonrpc") != "2.0":
            error = InvalidRequest('invalid request: jsonrpc must be "2.0"')
            return error_response(request_id, error)
        method = request.get("method")
        if not isinstance(method, str):
            error = InvalidRequest("invalid request: method must be a string")
            return error_response(request_id, error)
        try:
            result = self.call(method, request.get("params"), session)
        except RpcError as exc:
            return error_response(request_id, exc) if is_call else None
        if not is_call:
            return None
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def call(self, name: str, params: Any, session: Session) -> Any:
        """Run one method; every failure is raised as an :class:`RpcError`."""
        method = self.methods.get(name)
        if method is None:
            raise MethodNotFound(name)
        if params is None:
            params = []
        elif not isinstance(params, list):
            raise InvalidParams("invalid params: expected an array of arguments (by-position)")
        if len(params) > len(method.arg_names):
            raise InvalidParams(f"too many arguments, want at most {len(method.arg_names)}")
        if len(params) < method.required:
            raise InvalidParams(f"missing value for required argument {len(params)}")
        kwargs = {"session": session} if method.wants_session else {}
        try:
            return method.handler(self.node, *params, **kwargs)
        except ParamError as exc:
            name_root = exc.name.split(".", 1)[0]
            if name_root in method.arg_names:
                raise exc.with_index(method.arg_names.index(name_root)) from None
            raise
        except RpcError:
            raise
        except (InvalidTransaction, StateUnavailable) as exc:
            raise ServerError(str(exc)) from None
        except Exception:
            log.exception("internal error in %s", name)
            raise InternalError("internal error") from None
