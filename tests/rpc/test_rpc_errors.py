"""Raw HTTP / WebSocket: every JSON-RPC error code, batches, limits, CORS, health, WebSocket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from eth_account import Account
from rpc_harness import (
    ALLOWED_ORIGIN,
    CHAIN_ID,
    KEYS,
    MAX_BATCH,
    MAX_REQUEST_BYTES,
    HttpReply,
    ServerThread,
    http,
)
from web3 import Web3

from cybermiles.node import tx_decoder
from cybermiles.node.config import RpcConfig
from cybermiles.node.node import Node
from cybermiles.rpc.dispatch import Dispatcher

GWEI = 10**9
TO = Web3.to_checksum_address("0x" + "ab" * 20)


def request(method: str, *params: Any, id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": list(params)}


def error_of(reply: HttpReply, status: int = 200) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.body)
    doc = reply.json()
    assert "result" not in doc, doc
    assert doc["jsonrpc"] == "2.0"
    return doc["error"]


# --- -32700 / -32600 ----------------------------------------------------------------------------


def test_parse_error(post: Callable[..., HttpReply]) -> None:
    reply = post(b'{"jsonrpc": "2.0", "id": 1, "method": ')
    assert error_of(reply) == {"code": -32700, "message": "parse error"}
    assert reply.json()["id"] is None
    assert error_of(post(b"\xff\xfe"))["code"] == -32700


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (42, "expected a JSON object"),
        ({"jsonrpc": "2.0", "id": 1}, "method must be a string"),
        ({"jsonrpc": "2.0", "id": 1, "method": 5}, "method must be a string"),
        ({"jsonrpc": "1.0", "id": 1, "method": "eth_chainId"}, 'jsonrpc must be "2.0"'),
        ({"id": 1, "method": "eth_chainId"}, 'jsonrpc must be "2.0"'),
        ({"jsonrpc": "2.0", "id": [1], "method": "eth_chainId"}, "id must be"),
        ({"jsonrpc": "2.0", "id": True, "method": "eth_chainId"}, "id must be"),
    ],
)
def test_invalid_request(post: Callable[..., HttpReply], body: Any, needle: str) -> None:
    error = error_of(post(body))
    assert error["code"] == -32600
    assert needle in error["message"]


def test_empty_batch(post: Callable[..., HttpReply]) -> None:
    assert error_of(post([])) == {"code": -32600, "message": "empty batch"}


def test_batch_too_large(post: Callable[..., HttpReply]) -> None:
    error = error_of(post([request("eth_chainId", id=i) for i in range(MAX_BATCH + 1)]))
    assert error["code"] == -32600
    assert f"at most {MAX_BATCH}" in error["message"]


def test_batch(post: Callable[..., HttpReply]) -> None:
    batch = [
        request("eth_chainId", id=1),
        request("no_such_method", id="two"),
        {"jsonrpc": "2.0", "method": "eth_chainId"},  # notification: no reply
        7,
        request("eth_blockNumber", id=None),
    ] + [request("net_version", id=10 + i) for i in range(MAX_BATCH - 5)]
    reply = post(batch)
    assert reply.status == 200
    replies = reply.json()
    assert len(replies) == MAX_BATCH - 1
    assert replies[0] == {"jsonrpc": "2.0", "id": 1, "result": hex(CHAIN_ID)}
    assert replies[1]["id"] == "two" and replies[1]["error"]["code"] == -32601
    assert replies[2]["id"] is None and replies[2]["error"]["code"] == -32600
    assert replies[3]["id"] is None and replies[3]["result"].startswith("0x")
    assert [r["result"] for r in replies[4:]] == [str(CHAIN_ID)] * (MAX_BATCH - 5)


def test_notifications_get_no_reply(post: Callable[..., HttpReply]) -> None:
    reply = post({"jsonrpc": "2.0", "method": "eth_chainId"})
    assert (reply.status, reply.body) == (200, b"")
    reply = post([{"jsonrpc": "2.0", "method": "eth_chainId"}, {"jsonrpc": "2.0", "method": "x"}])
    assert (reply.status, reply.body) == (200, b"")


def test_ids_are_echoed(post: Callable[..., HttpReply]) -> None:
    for request_id in (0, "abc", 1.5, None, 2**40):
        assert post(request("eth_chainId", id=request_id)).json()["id"] == request_id


# --- -32601 / -32602 ----------------------------------------------------------------------------


def test_method_not_found(post: Callable[..., HttpReply]) -> None:
    assert error_of(post(request("eth_foo"))) == {
        "code": -32601,
        "message": "the method eth_foo does not exist/is not available",
    }


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("eth_getBalance", ["0x1234"], "invalid argument 0 (address): hex string has length 4"),
        ("eth_getBalance", ["ab" * 20], "invalid argument 0 (address): hex string without 0x"),
        ("eth_getBalance", [None], "invalid argument 0 (address): expected a 0x-prefixed"),
        ("eth_getBalance", ["0x" + "ab" * 20, "0x01"], "invalid argument 1 (block): hex number "),
        ("eth_getBalance", ["0x" + "ab" * 20, "newest"], "invalid argument 1 (block): expected"),
        (
            "eth_getBalance",
            ["0x" + "ab" * 20, {"blockHash": "0x12"}],
            "invalid argument 1 (block.blockHash): hex string has length 2",
        ),
        (
            "eth_getBalance",
            ["0x" + "ab" * 20, {"blockHash": "0x" + "00" * 32, "blockNumber": "0x0"}],
            "invalid argument 1 (block): cannot specify both",
        ),
        ("eth_getBalance", ["0x" + "ab" * 20, "latest", 1], "too many arguments, want at most 2"),
        ("eth_getBalance", [], "missing value for required argument 0"),
        ("eth_getBlockByNumber", ["latest"], "missing value for required argument 1"),
        ("eth_getBlockByNumber", ["latest", "yes"], "invalid argument 1 (full_transactions)"),
        ("eth_getBlockByNumber", ["0x10000000000000000", False], "invalid argument 0 (block): hex"),
        ("eth_getStorageAt", ["0x" + "ab" * 20, "0x" + "0" * 65], "invalid argument 1 (slot)"),
        ("eth_sendRawTransaction", ["0x123"], "invalid argument 0 (data): hex string of odd"),
        ("eth_getTransactionByHash", ["0xzz"], "invalid argument 0 (tx_hash): invalid hex"),
        ("web3_sha3", [], "missing value for required argument 0"),
    ],
)
def test_invalid_params(
    post: Callable[..., HttpReply], method: str, params: list[Any], message: str
) -> None:
    error = error_of(post(request(method, *params)))
    assert error["code"] == -32602
    assert error["message"].startswith(message), error["message"]


def test_by_name_params_rejected(post: Callable[..., HttpReply]) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": {"address": "0x"}}
    error = error_of(post(body))
    assert error["code"] == -32602 and "array" in error["message"]


# --- -32000 ------------------------------------------------------------------------------------


def _signed(key: Any, **tx: Any) -> str:
    fields = {
        "chainId": CHAIN_ID,
        "nonce": 0,
        "to": TO,
        "value": 1,
        "gas": 21_000,
        "maxFeePerGas": 2 * GWEI,
        "maxPriorityFeePerGas": GWEI,
    }
    return "0x" + bytes(key.sign_transaction(fields | tx).raw_transaction).hex()


def test_rejected_transactions_use_geth_messages(
    post: Callable[..., HttpReply], w3: Web3, node: Node
) -> None:
    key = KEYS[1]
    first = _signed(key)
    reply = post(request("eth_sendRawTransaction", first))
    tx_hash = reply.json()["result"]
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)

    error = error_of(post(request("eth_sendRawTransaction", _signed(key, value=2))))
    assert error["code"] == -32000
    assert error["message"].startswith("nonce too low"), error

    error = error_of(post(request("eth_sendRawTransaction", _signed(key, chainId=CHAIN_ID + 1))))
    assert error == {"code": -32000, "message": "invalid chain id for signer"}

    error = error_of(post(request("eth_sendRawTransaction", "0xc3010203")))
    assert error["code"] == -32000 and error["message"].startswith("rlp: ")
    error = error_of(post(request("eth_sendRawTransaction", "0x1234")))
    assert error == {"code": -32000, "message": "transaction type not supported"}

    poor = Account.from_key(b"\x77" * 32)
    error = error_of(post(request("eth_sendRawTransaction", _signed(poor))))
    assert error["code"] == -32000
    assert error["message"].startswith("insufficient funds for gas * price + value")


def test_batch_of_raw_transactions_answers_each_as_alone(
    post: Callable[..., HttpReply], w3: Web3, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch large enough to be decoded in the decoder process answers every request as it
    would be answered alone: hashes in order, bad ones with their own errors."""

    def not_here(raw: bytes, chain_id: int) -> Any:
        raise AssertionError("decoded in the node process, not by the decoder process")

    senders = KEYS[2:5]
    sends = [_signed(key, nonce=n, value=n + 1) for n in range(4) for key in senders]
    bad_signature = sends[0][:-4] + "0000"
    batch = [
        *sends,
        _signed(KEYS[6], chainId=CHAIN_ID + 1),
        "0x1234",
        "0xzz",
        sends[3],  # the same transaction again
        bad_signature,
    ]
    assert len(batch) - 1 >= node.tx_decoder.min_batch and len(batch) <= MAX_BATCH  # -1: 0xzz
    assert node.tx_decoder.wait_ready(60)
    monkeypatch.setattr(tx_decoder, "decode_transaction", not_here)
    reply = post([request("eth_sendRawTransaction", raw, id=i) for i, raw in enumerate(batch)])
    answers = {a["id"]: a for a in reply.json()}
    assert sorted(answers) == list(range(len(batch)))
    for i, raw in enumerate(sends):
        assert answers[i]["result"] == Web3.to_hex(Web3.keccak(hexstr=raw)), answers[i]
    n = len(sends)
    assert answers[n]["error"] == {"code": -32000, "message": "invalid chain id for signer"}
    assert answers[n + 1]["error"] == {"code": -32000, "message": "transaction type not supported"}
    assert answers[n + 2]["error"]["code"] == -32602
    assert answers[n + 3]["error"] == {"code": -32000, "message": "already known"}
    assert answers[n + 4]["error"]["code"] == -32000
    monkeypatch.undo()
    for i in range(n):
        receipt = w3.eth.wait_for_transaction_receipt(
            answers[i]["result"], timeout=30, poll_latency=0.05
        )
        assert receipt["status"] == 1


def test_unknown_block_for_state_reads(post: Callable[..., HttpReply]) -> None:
    address = "0x" + "ab" * 20
    for method, extra in [
        ("eth_getBalance", []),
        ("eth_getCode", []),
        ("eth_getTransactionCount", []),
        ("eth_getStorageAt", ["0x0"]),
    ]:
        error = error_of(post(request(method, address, *extra, "0xffffff")))
        assert error == {"code": -32000, "message": "header not found"}
    error = error_of(post(request("eth_getBalance", address, {"blockHash": "0x" + "11" * 32})))
    assert error == {"code": -32000, "message": "header for hash not found"}


# --- -32603 ------------------------------------------------------------------------------------


def test_internal_error_is_generic_and_logged(
    post: Callable[..., HttpReply], server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(node: Any) -> None:
        raise ZeroDivisionError("secret detail")

    dispatcher: Dispatcher = server.runner.app[_dispatcher_key()]
    if "test_explode" not in dispatcher.methods:
        dispatcher.methods.add("test_explode", explode)
    with caplog.at_level(logging.ERROR, logger="cybermiles.rpc"):
        error = error_of(post(request("test_explode")))
    assert error == {"code": -32603, "message": "internal error"}
    records = [r for r in caplog.records if "test_explode" in r.getMessage()]
    assert records and records[0].exc_info is not None
    assert records[0].exc_info[0] is ZeroDivisionError


def _dispatcher_key() -> Any:
    from cybermiles.rpc.server import DISPATCHER

    return DISPATCHER


# --- transport: size, content type, CORS, health -----------------------------------------------


def test_oversize_request_rejected(post: Callable[..., HttpReply]) -> None:
    big = request("web3_sha3", "0x" + "00" * MAX_REQUEST_BYTES)
    error = error_of(post(big), status=413)
    assert error["code"] == -32600
    assert f"at most {MAX_REQUEST_BYTES} bytes" in error["message"]


def test_oversize_chunked_request_rejected(server: ServerThread) -> None:
    """Without Content-Length the limit applies while reading the body."""

    async def run() -> tuple[int, Any]:
        async def chunks() -> Any:
            yield b'{"jsonrpc": "2.0", "id": 1, "method": "web3_sha3", "params": ["0x'
            for _ in range(MAX_REQUEST_BYTES // 4096 + 1):
                yield b"00" * 2048
            yield b'"]}'

        async with (
            aiohttp.ClientSession() as session,
            session.post(
                server.url, data=chunks(), headers={"Content-Type": "application/json"}
            ) as response,
        ):
            return response.status, await response.json()

    status, doc = asyncio.run(run())
    assert status == 413
    assert doc["error"]["code"] == -32600


def test_content_type_must_be_json(post: Callable[..., HttpReply]) -> None:
    reply = post(request("eth_chainId"), headers={"Content-Type": "text/plain"})
    error = error_of(reply, status=415)
    assert error["code"] == -32600 and "application/json" in error["message"]
    ok = post(request("eth_chainId"), headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.json()["result"] == hex(CHAIN_ID)


def test_cors_allowed_origin(post: Callable[..., HttpReply], server: ServerThread) -> None:
    reply = post(request("eth_chainId"), headers={"Origin": ALLOWED_ORIGIN})
    assert reply.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Origin" in reply.headers.get("Vary", "")
    other = post(request("eth_chainId"), headers={"Origin": "http://evil.example"})
    assert other.status == 200
    assert "Access-Control-Allow-Origin" not in other.headers
    no_origin = post(request("eth_chainId"))
    assert "Access-Control-Allow-Origin" not in no_origin.headers

    preflight = http(
        server.url,
        b"",
        method="OPTIONS",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"


@pytest.fixture(scope="module")
def wildcard_server(node: Node) -> Iterator[ServerThread]:
    server = ServerThread(node, RpcConfig(cors=["*"]))
    yield server
    server.stop()


def test_cors_wildcard(wildcard_server: ServerThread) -> None:
    reply = http(wildcard_server.url, request("eth_chainId"), headers={"Origin": "http://a.b"})
    assert reply.json()["result"] == hex(CHAIN_ID)
    assert reply.headers["Access-Control-Allow-Origin"] == "*"


def test_health(server: ServerThread, node: Node) -> None:
    reply = http(server.url, b"", method="GET")
    assert reply.status == 200
    doc = reply.json()
    assert doc["status"] == "ok"
    assert doc["chainId"] == CHAIN_ID
    assert doc["blockNumber"] == node.chain.head.block_number
    assert doc["client"].startswith("cybermiles/v")


# --- WebSocket ---------------------------------------------------------------------------------


async def _ws_exchange(url: str, messages: list[Any], headers: dict[str, str] | None = None):
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers=headers or {}) as ws,
    ):
        replies = []
        for message in messages:
            if isinstance(message, bytes | str):
                await ws.send_str(message if isinstance(message, str) else message.decode())
            else:
                await ws.send_json(message)
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.TEXT
            replies.append(msg.json())
        return replies


def test_websocket_answers_the_same_methods(server: ServerThread) -> None:
    replies = asyncio.run(
        _ws_exchange(
            server.url,
            [
                request("eth_chainId", id=1),
                [request("net_version", id=2), request("eth_nope", id=3)],
                "{not json",
                request("eth_getBalance", "0x12", id=4),
            ],
        )
    )
    assert replies[0] == {"jsonrpc": "2.0", "id": 1, "result": hex(CHAIN_ID)}
    assert replies[1][0]["result"] == str(CHAIN_ID)
    assert replies[1][1]["error"]["code"] == -32601
    assert replies[2]["error"]["code"] == -32700
    assert replies[3]["error"]["code"] == -32602


def test_websocket_origin_check(server: ServerThread) -> None:
    ok = asyncio.run(_ws_exchange(server.url, [request("eth_chainId")], {"Origin": ALLOWED_ORIGIN}))
    assert ok[0]["result"] == hex(CHAIN_ID)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        asyncio.run(_ws_exchange(server.url, [], {"Origin": "http://evil.example"}))
    assert info.value.status == 403


def test_websocket_oversize_message_closes(server: ServerThread) -> None:
    async def run() -> aiohttp.WSMessage:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(server.url) as ws,
        ):
            await ws.send_str("x" * (MAX_REQUEST_BYTES + 1))
            return await ws.receive(timeout=10)

    msg = asyncio.run(run())
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
