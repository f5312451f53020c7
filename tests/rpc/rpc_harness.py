"""Helpers shared by the RPC tests: a node factory, a threaded server, raw HTTP, constants."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from eth_account import Account
from eth_account.signers.local import LocalAccount

from cybermiles.chain.genesis import parse_genesis
from cybermiles.node.config import NodeConfig, RpcConfig
from cybermiles.node.node import Node
from cybermiles.rpc import bound_port, start_rpc_server

CHAIN_ID = 1234
KEYS: list[LocalAccount] = [Account.from_key(bytes([i + 1]) * 32) for i in range(8)]
FUNDS = 10**24
COINBASE = "0x0000000000000000000000000000000000001000"  # every block's: the staking module
ALLOWED_ORIGIN = "http://allowed.example"
MAX_BATCH = 20
MAX_REQUEST_BYTES = 64 * 1024
SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "spec" / "execution-apis-openrpc.json"
SPEC_URI = "urn:execution-apis"


def make_node(home: Path, *, dev: bool = True) -> Node:
    genesis = parse_genesis(
        {
            "chain_id": CHAIN_ID,
            "timestamp": 1_700_000_000,
            "alloc": {key.address: {"balance": str(FUNDS)} for key in KEYS},
        }
    )
    config = NodeConfig()
    config.mining.block_time = 0
    config.rpc = RpcConfig(
        port=0, cors=[ALLOWED_ORIGIN], max_batch=MAX_BATCH, max_request_bytes=MAX_REQUEST_BYTES
    )
    dev_keys = {bytes.fromhex(KEYS[0].address[2:]): bytes(KEYS[0].key)}
    return Node(home, config, genesis, dev=dev, dev_keys=dev_keys)


class ServerThread:
    """An RPC server for ``node`` running in its own event loop thread."""

    def __init__(self, node: Node, config: RpcConfig | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="rpc-test", daemon=True)
        self.thread.start()
        self.runner: web.AppRunner = self.run(start_rpc_server(node, "127.0.0.1", 0, config=config))
        self.port = bound_port(self.runner)
        self.url = f"http://127.0.0.1:{self.port}/"

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class HttpReply:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    url: str,
    body: bytes | str | Any,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> HttpReply:
    """One raw HTTP request; ``body`` that is not bytes/str is JSON-encoded."""
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(
        url, data=body if method == "POST" else None, method=method, headers=all_headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return HttpReply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return HttpReply(exc.code, exc.headers, exc.read())
