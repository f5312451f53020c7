"""The dispatcher and method table without a network: arity, error mapping, sessions."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from eth_account import Account
from rpc_harness import make_node

from cybermiles.chain.errors import InvalidTransaction
from cybermiles.rpc.dispatch import Dispatcher
from cybermiles.rpc.lookup import TX_ENTRY_OVERHEAD, TxCache
from cybermiles.rpc.methods import build_methods, eth
from cybermiles.rpc.registry import MethodTable, describe
from cybermiles.rpc.session import Session
from cybermiles.state.view import StateUnavailable

PRUNED = "state of block 3 is no longer kept (history starts at 100; run with --archive)"


class FakeBlocks:
    def header(self, number: int) -> Any:
        return object() if number <= 200 else None


class FakeChain:
    head = SimpleNamespace(block_number=200)
    blocks = FakeBlocks()

    @contextmanager
    def state_at(self, number: int | None = None) -> Any:
        if number is not None and number < 100:
            raise StateUnavailable(PRUNED)
        yield SimpleNamespace(get_balance=lambda addr: 5)


def run(dispatcher: Dispatcher, method: str, *params: Any, session: Session | None = None):
    body = orjson.dumps({"jsonrpc": "2.0", "id": 9, "method": method, "params": list(params)})
    reply = dispatcher.handle_body(body, session or Session("test"))
    assert reply is not None
    return orjson.loads(reply)


@pytest.fixture
def dispatcher() -> Dispatcher:
    table = MethodTable()
    table.update(eth.methods)

    def reject(node: Any) -> None:
        raise InvalidTransaction("already known")

    def whoami(node: Any, *, session: Session) -> str:
        return session.transport

    def unencodable(node: Any) -> Any:
        return {"value": 2**70}

    table.add("test_unencodable", unencodable)
    table.add("test_reject", reject)
    table.add("test_whoami", whoami)
    return Dispatcher(SimpleNamespace(chain=FakeChain()), table, max_batch=5)


def test_state_outside_window_is_server_error(dispatcher: Dispatcher) -> None:
    addr = "0x" + "ab" * 20
    assert run(dispatcher, "eth_getBalance", addr, "0x96")["result"] == "0x5"
    assert run(dispatcher, "eth_getBalance", addr, "0x3")["error"] == {
        "code": -32000,
        "message": PRUNED,
    }
    assert run(dispatcher, "eth_getBalance", addr, "0xc9")["error"]["message"] == (
        "header not found"
    )


def test_invalid_transaction_is_server_error(dispatcher: Dispatcher) -> None:
    assert run(dispatcher, "test_reject")["error"] == {"code": -32000, "message": "already known"}


def test_session_is_passed_when_asked(dispatcher: Dispatcher) -> None:
    assert run(dispatcher, "test_whoami", session=Session("ws", lambda _: None))["result"] == "ws"
    error = run(dispatcher, "test_whoami", 1)["error"]
    assert error == {"code": -32602, "message": "too many arguments, want at most 0"}


def test_describe_reads_arity() -> None:
    def handler(node: Any, a: Any, b: Any = None, *, session: Session) -> None: ...

    method = describe("x_y", handler)
    assert (method.arg_names, method.required, method.wants_session) == (("a", "b"), 1, True)

    def varargs(node: Any, *params: Any) -> None: ...

    with pytest.raises(TypeError):
        describe("x_z", varargs)
    table = MethodTable()
    table.add("x_y", handler)
    with pytest.raises(ValueError, match="registered twice"):
        table.add("x_y", handler)


def test_method_set() -> None:
    names = set(build_methods(SimpleNamespace(dev=False)).names())
    assert {
        "web3_clientVersion",
        "web3_sha3",
        "net_version",
        "net_listening",
        "net_peerCount",
        "eth_chainId",
        "eth_syncing",
        "eth_blockNumber",
        "eth_getBalance",
        "eth_getTransactionCount",
        "eth_getCode",
        "eth_getStorageAt",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_accounts",
        "eth_sendRawTransaction",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getBlockTransactionCountByNumber",
        "eth_getBlockTransactionCountByHash",
        "eth_getTransactionByBlockNumberAndIndex",
        "eth_getTransactionByBlockHashAndIndex",
        "eth_getBlockReceipts",
    } <= names


def test_accounts_empty_without_dev(tmp_path: Path) -> None:
    node = make_node(tmp_path, dev=False)  # dev keys given, but not a dev node
    try:
        assert eth.accounts(node) == []
    finally:
        node.chain.close()


def test_session_close_runs_callbacks_once() -> None:
    sent: list[bytes] = []
    session = Session("ws", sent.append)
    calls: list[str] = []
    session.on_close(lambda: calls.append("a"))
    session.on_close(lambda: calls.append("b"))
    session.notify(b"{}")
    session.close()
    session.close()
    session.notify(b"dropped")
    assert calls == ["b", "a"] and sent == [b"{}"]
    assert not session.can_notify
    with pytest.raises(RuntimeError):
        Session("http").notify(b"{}")


def test_tx_cache_is_bounded() -> None:
    key = Account.from_key(b"\x09" * 32)
    raws = [
        bytes(
            key.sign_transaction(
                {"chainId": 1, "nonce": n, "gas": 21_000, "gasPrice": 1, "to": key.address}
            ).raw_transaction
        )
        for n in range(5)
    ]
    cache = TxCache(max_bytes=3 * (len(raws[0]) + TX_ENTRY_OVERHEAD))
    decoded = [cache.decode(raw, 1) for raw in raws]
    assert [tx.nonce for tx in decoded] == list(range(5))
    assert len(cache) == 3
    assert cache.decode(raws[4], 1) is decoded[4]


def test_unencodable_result_is_internal_error(dispatcher: Dispatcher) -> None:
    assert run(dispatcher, "test_unencodable")["error"] == {
        "code": -32603,
        "message": "internal error",
    }
    body = orjson.dumps(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
            {"jsonrpc": "2.0", "id": 2, "method": "test_unencodable"},
        ]
    )
    dispatcher.node.chain_id = 7
    reply = orjson.loads(dispatcher.handle_body(body, Session("test")) or b"")
    assert reply[0] == {"jsonrpc": "2.0", "id": 1, "result": "0x7"}
    assert reply[1]["error"]["code"] == -32603
