"""eth_subscribe over WebSocket: web3.py's AsyncWeb3 and a raw aiohttp client against an
automining node; the node-event plumbing with fakes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from eth_account.signers.local import LocalAccount
from rpc_harness import CHAIN_ID, KEYS, HttpReply, ServerThread
from web3 import AsyncWeb3, Web3, WebSocketProvider
from web3.contract import Contract

from cybermiles.chain.header import make_header
from cybermiles.chain.receipts import Log, Receipt, logs_bloom
from cybermiles.crypto.keccak import keccak256
from cybermiles.node.node import Node
from cybermiles.rpc import subscriptions
from cybermiles.rpc.filters import LogCriteria
from cybermiles.rpc.session import Session

GWEI = 10**9
ARTIFACT = Path(__file__).resolve().parents[2] / "contracts" / "build" / "TestToken.json"
TRANSFER = "0x" + keccak256(b"Transfer(address,address,uint256)").hex()
TIMEOUT = 20.0
FEES = {
    "chainId": CHAIN_ID,
    "nonce": 0,
    "gas": 100_000,
    "maxFeePerGas": 2 * GWEI,
    "maxPriorityFeePerGas": GWEI,
}
HEADER_ONLY = {"size", "transactions", "uncles", "withdrawals"}  # block fields newHeads omits


def signed(w3: Web3, account: LocalAccount, tx: dict[str, Any], nonce: int | None = None) -> bytes:
    """``tx`` signed with EIP-1559 fees (1 gwei tip) and the account's next nonce."""
    if nonce is None:
        nonce = w3.eth.get_transaction_count(account.address, "pending")
    full = {
        "chainId": CHAIN_ID,
        "nonce": nonce,
        "type": 2,
        "maxFeePerGas": 2 * GWEI,
        "maxPriorityFeePerGas": GWEI,
        "gas": 200_000,
        **tx,
    }
    return bytes(account.sign_transaction(full).raw_transaction)


def mined(w3: Web3, raw: bytes) -> Any:
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(raw), timeout=30, poll_latency=0.05
    )
    assert receipt.status == 1
    return receipt


@pytest.fixture(scope="module")
def token(w3: Web3) -> Contract:
    artifact = json.loads(ARTIFACT.read_text())
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    deploy = factory.constructor(10**24).build_transaction({**FEES, "gas": 1_500_000})
    receipt = mined(w3, signed(w3, KEYS[0], deploy))
    return w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])


def ws_url(server: ServerThread) -> str:
    return server.url.replace("http://", "ws://")


def eventually(probe: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


# --- web3.py ----------------------------------------------------------------------------------


def test_web3_new_heads_and_logs(server: ServerThread, w3: Web3, token: Contract) -> None:
    transfer = token.functions.transfer(KEYS[2].address, 123).build_transaction(FEES)
    raw = signed(w3, KEYS[0], {"to": transfer["to"], "data": transfer["data"]})

    async def run() -> tuple[str, str, dict[str, list[Any]], Any]:
        async with AsyncWeb3(WebSocketProvider(ws_url(server))) as aw3:
            heads = await aw3.eth.subscribe("newHeads")
            logs = await aw3.eth.subscribe("logs", {"address": token.address, "topics": [TRANSFER]})
            tx_hash = await aw3.eth.send_raw_transaction(raw)
            got: dict[str, list[Any]] = {}

            async def consume() -> None:
                async for message in aw3.socket.process_subscriptions():
                    got.setdefault(message["subscription"], []).append(message["result"])
                    if heads in got and logs in got:
                        return

            await asyncio.wait_for(consume(), TIMEOUT)
            assert await aw3.eth.unsubscribe(heads) is True
            assert await aw3.eth.unsubscribe(logs) is True
            return heads, logs, got, tx_hash

    heads, logs, got, tx_hash = asyncio.run(run())
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    head = got[heads][0]
    assert head["number"] == receipt.blockNumber and head["hash"] == receipt.blockHash
    assert "transactions" not in head
    [entry] = got[logs]
    assert entry["transactionHash"] == tx_hash and entry["removed"] is False
    event = token.events.Transfer().process_log(entry)
    assert (event.args["from"], event.args.to, event.args.value) == (
        KEYS[0].address,
        KEYS[2].address,
        123,
    )


# --- raw WebSocket ----------------------------------------------------------------------------


class Client:
    """A raw JSON-RPC WebSocket client keeping notifications apart from replies."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.notifications: list[dict[str, Any]] = []

    async def request(self, method: str, *params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json(
            {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": list(params)}
        )
        while True:
            message = await self._receive()
            if message.get("id") == self.next_id:
                return message

    async def call(self, method: str, *params: Any) -> Any:
        reply = await self.request(method, *params)
        assert "error" not in reply, reply
        return reply["result"]

    async def _receive(self) -> dict[str, Any]:
        message = await asyncio.wait_for(self.ws.receive_json(), TIMEOUT)
        if "method" in message:
            self.notifications.append(message)
        return message

    async def wait_for(self, sub_id: str, count: int = 1) -> list[Any]:
        """The results of the first ``count`` notifications of ``sub_id``."""

        def results() -> list[Any]:
            return [
                n["params"]["result"]
                for n in self.notifications
                if n["params"]["subscription"] == sub_id
            ]

        while len(results()) < count:
            await self._receive()
        return results()[:count]


def test_raw_websocket_subscriptions(server: ServerThread, node: Node, w3: Web3) -> None:
    sender = KEYS[3]
    raw = signed(w3, sender, {"to": KEYS[4].address, "value": 5, "gas": 21_000})
    registry = subscriptions.events_for(node).subscriptions

    async def run() -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(ws_url(server)) as ws,
            http.ws_connect(ws_url(server)) as other_ws,
        ):
            client, other = Client(ws), Client(other_ws)
            hashes = await client.call("eth_subscribe", "newPendingTransactions")
            full = await client.call("eth_subscribe", "newPendingTransactions", True)
            heads = await client.call("eth_subscribe", "newHeads")
            assert len({hashes, full, heads}) == 3 and len(registry) == 3
            tx_hash = await client.call("eth_sendRawTransaction", "0x" + raw.hex())

            [announced] = await client.wait_for(hashes)
            assert announced == tx_hash
            [tx] = await client.wait_for(full)
            assert tx["hash"] == tx_hash and tx["blockHash"] is None
            assert tx["from"] == sender.address.lower() and tx["value"] == "0x5"
            [header] = await client.wait_for(heads)
            first = next(n for n in client.notifications if n["params"]["subscription"] == heads)
            assert first == {
                "jsonrpc": "2.0",
                "method": "eth_subscription",
                "params": {"subscription": heads, "result": header},
            }
            block = await client.call("eth_getBlockByNumber", header["number"], False)
            assert block["transactions"] == [tx_hash]
            assert header == {k: v for k, v in block.items() if k not in HEADER_ONLY}

            # ids belong to their connection
            error = (await other.request("eth_unsubscribe", hashes))["error"]
            assert error == {"code": -32000, "message": "subscription not found"}
            assert await client.call("eth_unsubscribe", hashes) is True
            error = (await client.request("eth_unsubscribe", hashes))["error"]
            assert error == {"code": -32000, "message": "subscription not found"}

            error = (await client.request("eth_subscribe", "syncingish"))["error"]
            assert error == {
                "code": -32601,
                "message": 'no "syncingish" subscription in eth namespace',
            }
            error = (await client.request("eth_subscribe", "newHeads", {}))["error"]
            assert error == {"code": -32602, "message": "too many arguments, want at most 1"}
            error = (await client.request("eth_subscribe", "logs", {"fromBlock": "0x0"}))["error"]
            assert error == {
                "code": -32000,
                "message": "log subscription does not support history block range",
            }
            error = (await client.request("eth_subscribe", "logs", {"topics": "x"}))["error"]
            assert error["code"] == -32602
            assert (await other.call("eth_subscribe", "logs", {})).startswith("0x")
            assert len(registry) == 3

    asyncio.run(run())
    # the sockets closed: their subscriptions ended
    assert eventually(lambda: len(registry) == 0)


def test_subscribe_over_http(post: Callable[..., HttpReply]) -> None:
    def error(method: str, *params: Any) -> Any:
        reply = post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        return reply.json()["error"]

    unsupported = {"code": -32601, "message": "notifications not supported"}
    assert error("eth_subscribe", "newHeads") == unsupported
    assert error("eth_subscribe", "logs", {"address": KEYS[0].address}) == unsupported
    assert error("eth_unsubscribe", "0x1") == {"code": -32000, "message": "subscription not found"}


# --- node events with fakes -------------------------------------------------------------------


class FakeNode:
    """What ``subscriptions.attach`` uses of a node (weakly referenceable, like ``Node``)."""

    def __init__(self) -> None:
        self.producer = SimpleNamespace(listeners=[])
        self.mempool = SimpleNamespace(on_added=None)


def fake_block(number: int, logs: tuple[Log, ...]) -> SimpleNamespace:
    bloom = logs_bloom(logs)
    header = make_header(
        block_number=number, bloom=int.from_bytes(bloom, "big"), gas_limit=10**7, timestamp=9
    )
    receipts = [Receipt(2, 1, 30_000, logs, bloom)]
    txs = [SimpleNamespace(hash=b"\x77" * 32)]
    return SimpleNamespace(header=header, hash=b"\x99" * 32, transactions=txs, receipts=receipts)


def test_node_events_attach_detach_and_fan_out() -> None:
    node = FakeNode()
    seen: list[Any] = []
    node.mempool.on_added = seen.append  # an earlier hook keeps working
    events = subscriptions.attach(node)
    assert subscriptions.attach(node) is events  # reference counted
    assert node.producer.listeners == [events.on_block]
    assert subscriptions.events_for(node) is events

    sent: list[bytes] = []
    session = Session("ws", sent.append)
    broken = Session("ws", lambda payload: 1 / 0)  # a failing transport never breaks delivery
    address = b"\x42" * 20
    topic = b"\x01" * 32
    crit = LogCriteria(addresses=(address,))
    events.subscriptions.add(subscriptions.Subscription("0xa1", "logs", broken, crit))
    events.subscriptions.add(subscriptions.Subscription("0xa", "logs", session, crit))
    events.subscriptions.add(subscriptions.Subscription("0xb", "newHeads", session))
    block_filter = events.filters.new_block_filter()

    logs = (Log(address, (topic,), b"1"), Log(b"\x43" * 20, (), b""), Log(address, (), b"2"))
    node.producer.listeners[0](fake_block(7, logs))
    messages = [json.loads(payload) for payload in sent]
    assert [m["params"]["subscription"] for m in messages] == ["0xb", "0xa", "0xa"]
    assert messages[0]["params"]["result"]["number"] == "0x7"
    assert [m["params"]["result"]["logIndex"] for m in messages[1:]] == ["0x0", "0x2"]
    assert events.filters.changes(block_filter) == ["0x" + "99" * 32]

    tx = SimpleNamespace(hash=b"\x55" * 32)
    pending = events.filters.new_pending_filter()
    node.mempool.on_added(tx)
    assert seen == [tx]
    assert events.filters.changes(pending) == ["0x" + "55" * 32]

    session.close()  # the socket closed
    assert len(events.subscriptions) == 1  # only the broken session's subscription is left
    node.producer.listeners[0](SimpleNamespace())  # a malformed event is logged, not raised

    subscriptions.detach(node)
    assert node.producer.listeners == [events.on_block]
    subscriptions.detach(node)
    assert node.producer.listeners == [] and node.mempool.on_added == seen.append
    subscriptions.detach(node)  # detaching more often than attaching is harmless
