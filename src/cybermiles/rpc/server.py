"""The JSON-RPC server: HTTP and WebSocket on one port and one path, ``/``.

Rules:

* ``POST /``: a JSON-RPC request or batch (see ``rpc.dispatch``). The body must be at most
  ``rpc.max_request_bytes`` (else HTTP 413 with a -32600 error body) and be sent as
  ``application/json`` (else HTTP 415 with a -32600 error body; like geth, this stops web pages
  from posting "simple" cross-origin requests that skip the CORS preflight). JSON-RPC errors
  are HTTP 200. A message of notifications only gets HTTP 200 with an empty body.
* ``GET /`` with ``Upgrade: websocket``: a WebSocket answering the same methods, one text
  frame per reply; replies and subscription notifications (``rpc.subscriptions``) share one
  ordered outgoing queue. Messages above ``max_request_bytes`` close the socket (1009). A
  browser ``Origin`` must be allowed by ``rpc.cors`` or be the server's own host, else HTTP 403.
* ``GET /`` otherwise: a small JSON health document (HTTP 503 if the block producer died).
* CORS (``rpc.cors``: origins, or ``"*"``): allowed origins get ``Access-Control-Allow-Origin``
  on responses and preflights (``OPTIONS /``); others get no CORS headers.
* Handlers are synchronous and fast (LMDB reads, a pool insert) and run on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit
from weakref import WeakSet

import orjson
from aiohttp import WSCloseCode, WSMsgType, hdrs, web

from cybermiles.node.config import RpcConfig
from cybermiles.rpc import subscriptions
from cybermiles.rpc.dispatch import Dispatcher, error_response
from cybermiles.rpc.errors import InvalidRequest
from cybermiles.rpc.methods import build_methods
from cybermiles.rpc.methods.web3 import CLIENT_VERSION
from cybermiles.rpc.session import Session

log = logging.getLogger("cybermiles.rpc")

JSON_CONTENT_TYPES = frozenset(
    {"application/json", "application/json-rpc", "application/jsonrequest"}
)
PREFLIGHT_MAX_AGE = "600"

NODE = web.AppKey("node", Any)
CONFIG = web.AppKey("config", RpcConfig)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
SOCKETS = web.AppKey("sockets", WeakSet)
WORKERS = web.AppKey("workers", ThreadPoolExecutor)
RPC_WORKERS = 4  # threads running handlers; LMDB reads and py-evm calls are thread-safe here


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


# --- CORS -------------------------------------------------------------------------------------


def allowed_origin(origin: str | None, cors: list[str]) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for ``origin``, or None if not allowed."""
    if not origin:
        return None
    if "*" in cors:
        return "*"
    wanted = origin.rstrip("/").lower()
    for entry in cors:
        if entry.rstrip("/").lower() == wanted:
            return origin
    return None


def _same_host(origin: str, host: str | None) -> bool:
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


@web.middleware
async def _cors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    cors = request.app[CONFIG].cors
    origin = request.headers.get(hdrs.ORIGIN)
    allow = allowed_origin(origin, cors)
    if request.method == hdrs.METH_OPTIONS:
        response: web.StreamResponse = web.Response(status=204)
        if allow is not None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "POST, GET, OPTIONS"
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = request.headers.get(
                hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "Content-Type"
            )
            response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = PREFLIGHT_MAX_AGE
    else:
        response = await handler(request)
        if isinstance(response, web.WebSocketResponse):
            return response
    if allow is not None:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = allow
        if allow != "*":
            response.headers.add(hdrs.VARY, "Origin")
    return response


# --- HTTP -------------------------------------------------------------------------------------


async def _post(request: web.Request) -> web.Response:
    if request.content_type not in JSON_CONTENT_TYPES:
        shown = request.headers.get(hdrs.CONTENT_TYPE, "none")
        error = InvalidRequest(
            f"invalid content type {shown!r}: only application/json is supported"
        )
        return _json(error_response(None, error), status=415)
    limit = request.app[CONFIG].max_request_bytes
    if request.content_length is not None and request.content_length > limit:
        return _too_large(request.content_length, limit)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _too_large(None, limit)
    reply = await _dispatch(request.app, body, Session("http"))
    if reply is None:
        return web.Response(status=200)
    return web.Response(body=reply, content_type="application/json")


def _too_large(size: int | None, limit: int) -> web.Response:
    got = "" if size is None else f" ({size} bytes)"
    error = InvalidRequest(f"request body too large{got}: at most {limit} bytes allowed")
    return _json(error_response(None, error), status=413)


async def _get(request: web.Request) -> web.StreamResponse:
    if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
        return await _websocket(request)
    return _health(request.app[NODE])


def _health(node: Any) -> web.Response:
    head = node.chain.head
    error = node.producer.error
    doc = {
        "status": "ok" if error is None else "error",
        "client": CLIENT_VERSION,
        "chainId": node.chain_id,
        "blockNumber": head.block_number,
        "blockTimestamp": head.timestamp,
        "dev": bool(node.dev),
    }
    if error is not None:
        doc["error"] = f"block producer stopped: {error!r}"
    return _json(doc, status=200 if error is None else 503)


# --- WebSocket --------------------------------------------------------------------------------


async def _websocket(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    origin = request.headers.get(hdrs.ORIGIN)
    if (
        origin
        and allowed_origin(origin, config.cors) is None
        and not _same_host(origin, request.host)
    ):
        return _json({"error": f"origin {origin} not allowed (see rpc.cors)"}, status=403)
    ws = web.WebSocketResponse(max_msg_size=config.max_request_bytes, heartbeat=30.0)
    await ws.prepare(request)
    loop = asyncio.get_running_loop()
    outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()

    def send(payload: bytes) -> None:  # any thread
        loop.call_soon_threadsafe(outgoing.put_nowait, payload)

    session = Session("ws", send)
    writer = asyncio.create_task(_ws_writer(ws, outgoing))
    request.app[SOCKETS].add(ws)
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                reply = await _dispatch(request.app, msg.data, session)
                if reply is not None:
                    outgoing.put_nowait(reply)
            elif msg.type == WSMsgType.ERROR:
                log.debug("websocket closed with error: %s", ws.exception())
    finally:
        session.close()
        outgoing.put_nowait(None)
        await writer
        request.app[SOCKETS].discard(ws)
    return ws


async def _ws_writer(ws: web.WebSocketResponse, outgoing: asyncio.Queue[bytes | None]) -> None:
    while (payload := await outgoing.get()) is not None:
        if ws.closed:
            continue
        try:
            await ws.send_str(payload.decode())
        except ConnectionError:
            log.debug("websocket send failed: client gone")


async def _attach_events(app: web.Application) -> None:
    subscriptions.attach(app[NODE])  # node events -> filters and subscriptions
    decoder = getattr(app[NODE], "tx_decoder", None)
    if decoder is not None:
        decoder.start()  # batches of raw transactions are decoded there (node.tx_decoder)


async def _detach_events(app: web.Application) -> None:
    subscriptions.detach(app[NODE])


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


# --- app and runner ---------------------------------------------------------------------------


async def _dispatch(app: web.Application, body: bytes | str, session: Session) -> bytes | None:
    """Run the (synchronous) handlers on the worker threads, never on the event loop, so a
    long eth_call or eth_getLogs cannot stall other connections."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(app[WORKERS], app[DISPATCHER].handle_body, body, session)


async def _stop_workers(app: web.Application) -> None:
    app[WORKERS].shutdown(wait=True, cancel_futures=True)


def make_app(node: Any, config: RpcConfig | None = None) -> web.Application:
    """The aiohttp application serving ``node`` (``config`` defaults to ``node.config.rpc``)."""
    config = config or node.config.rpc
    app = web.Application(middlewares=[_cors_middleware], client_max_size=config.max_request_bytes)
    app[NODE] = node
    app[CONFIG] = config
    app[DISPATCHER] = Dispatcher(node, build_methods(node), max_batch=config.max_batch)
    app[SOCKETS] = WeakSet()
    app[WORKERS] = ThreadPoolExecutor(max_workers=RPC_WORKERS, thread_name_prefix="rpc")
    app.router.add_post("/", _post)
    app.router.add_get("/", _get)
    app.router.add_route(hdrs.METH_OPTIONS, "/", _post)  # answered by the CORS middleware
    app.on_startup.append(_attach_events)
    app.on_shutdown.append(_close_sockets)
    app.on_cleanup.append(_detach_events)
    app.on_cleanup.append(_stop_workers)
    return app


async def start_rpc_server(
    node: Any, host: str, port: int, *, config: RpcConfig | None = None
) -> web.AppRunner:
    """Serve ``node`` on ``host:port`` (0: any free port, see :func:`bound_port`).

    Returns the started runner; ``await runner.cleanup()`` stops it.
    """
    runner = web.AppRunner(make_app(node, config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("JSON-RPC (HTTP and WebSocket) on %s:%d", host, bound_port(runner))
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port the runner's (first) site listens on."""
    addresses = runner.addresses
    if not addresses:
        raise RuntimeError("the RPC server is not listening")
    return int(addresses[0][1])
