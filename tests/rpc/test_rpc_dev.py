"""Dev methods (Hardhat's evm_* / hardhat_*) with web3.py and raw JSON against an automining
dev node; their refusal on a non-dev node; the unlimited contract size devnet flag; rewinding
free-transfer counts across a quota window.

The module's node is shared: tests only compare against values they read first, and every
test that turns automine off turns it back on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account
from eth_account.signers.local import LocalAccount
from rpc_harness import CHAIN_ID, FUNDS, KEYS, HttpReply, ServerThread, make_node
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionNotFound

from cybermiles.chain.genesis import parse_genesis
from cybermiles.chain.transactions import decode_transaction
from cybermiles.cli.devnet import devnet_command
from cybermiles.execution.free_quota import FreeTxCounter
from cybermiles.node.config import NodeConfig, RpcConfig
from cybermiles.node.node import Node
from cybermiles.rpc.dispatch import Dispatcher
from cybermiles.rpc.errors import RpcError
from cybermiles.rpc.methods import build_methods
from cybermiles.rpc.session import Session

OWNER = KEYS[0]  # the node holds this key
GWEI = 10**9
# init code returning 30,000 zero bytes: PUSH2 0x7530 PUSH1 0 RETURN
BIG_INIT_CODE = "0x617530" + "6000" + "f3"
BIG_DEPLOY_GAS = 7_000_000


def rpc_error(post: Callable[..., HttpReply], method: str, *params: Any) -> dict[str, Any]:
    reply = post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    doc = reply.json()
    assert "error" in doc, doc
    return doc["error"]


def send(w3: Web3, tx: dict[str, Any]) -> Any:
    tx_hash = w3.eth.send_transaction({"from": OWNER.address, **tx})
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)


def signed_transfer(key: LocalAccount, to: str, value: int, nonce: int, price: int) -> str:
    tx = {
        "chainId": CHAIN_ID,
        "nonce": nonce,
        "gas": 21000,
        "gasPrice": price,
        "to": to,
        "value": value,
    }
    return Account.sign_transaction(tx, key.key).raw_transaction.to_0x_hex()


# --- snapshots --------------------------------------------------------------------------------


def test_snapshot_revert_restores_chain_and_state(
    w3: Web3, call: Callable[..., Any], node: Node
) -> None:
    friend = Account.create().address
    start = w3.eth.block_number
    head = w3.eth.get_block("latest")
    owner_balance = w3.eth.get_balance(OWNER.address)
    owner_nonce = w3.eth.get_transaction_count(OWNER.address)
    snap = call("evm_snapshot")
    assert snap.startswith("0x")

    hashes = [send(w3, {"to": friend, "value": 1000 + i})["transactionHash"] for i in range(3)]
    call("hardhat_setBalance", KEYS[7].address, "0x1")
    assert w3.eth.block_number == start + 4
    assert w3.eth.get_balance(friend) == 3003
    assert w3.eth.get_transaction_count(OWNER.address) == owner_nonce + 3

    assert call("evm_revert", snap) is True
    assert w3.eth.block_number == start
    assert w3.eth.get_block("latest")["hash"] == head["hash"]
    assert w3.eth.get_balance(friend) == 0
    assert w3.eth.get_balance(OWNER.address) == owner_balance
    assert w3.eth.get_balance(KEYS[7].address) == FUNDS
    assert w3.eth.get_transaction_count(OWNER.address) == owner_nonce
    assert w3.eth.get_transaction_count(OWNER.address, "pending") == owner_nonce
    assert call("eth_getBlockByNumber", hex(start + 1), False) is None
    for tx_hash in hashes:
        with pytest.raises(TransactionNotFound):
            w3.eth.get_transaction(tx_hash)
    assert node.chain.world.state_root() == node.chain.head.state_root
    assert call("evm_revert", snap) is False  # a snapshot is used up by its revert

    # mining continues on the rewound chain
    receipt = send(w3, {"to": friend, "value": 7})
    assert receipt["blockNumber"] == start + 1 and receipt["status"] == 1
    assert w3.eth.get_balance(friend) == 7
    assert w3.eth.get_block(start + 1)["parentHash"] == head["hash"]
    assert w3.eth.get_balance(friend, start) == 0  # history is consistent too


def test_revert_deletes_later_snapshots(w3: Web3, call: Callable[..., Any]) -> None:
    first = call("evm_snapshot")
    send(w3, {"to": KEYS[6].address, "value": 1})
    second = call("evm_snapshot")
    assert int(second, 16) > int(first, 16)
    send(w3, {"to": KEYS[6].address, "value": 1})
    start = w3.eth.block_number
    assert call("evm_revert", first) is True
    assert w3.eth.block_number == start - 2
    assert call("evm_revert", second) is False
    assert call("evm_revert", "0x999999") is False


def test_revert_clears_the_pool_and_restores_time(w3: Web3, call: Callable[..., Any]) -> None:
    snap = call("evm_snapshot")
    call("evm_increaseTime", 5000)
    assert call("evm_setAutomine", False) is True
    try:
        tx_hash = w3.eth.send_transaction(
            {"from": OWNER.address, "to": KEYS[6].address, "value": 1}
        )
        assert call("txpool_status")["pending"] == "0x1"
        assert call("evm_revert", snap) is True
        assert call("txpool_status") == {"pending": "0x0", "queued": "0x0"}
        with pytest.raises(TransactionNotFound):
            w3.eth.get_transaction(tx_hash)
    finally:
        call("evm_setAutomine", True)
    call("evm_mine")
    assert w3.eth.get_block("latest")["timestamp"] < time.time() + 1000  # offset restored


def test_revert_beyond_the_kept_history_is_refused(
    w3: Web3, call: Callable[..., Any], post: Callable[..., HttpReply]
) -> None:
    """The harness node keeps 128 blocks of history (not archive, unlike `cmt devnet`)."""
    snap = call("evm_snapshot")
    start = w3.eth.block_number
    assert call("hardhat_mine", hex(140)) is True
    assert w3.eth.block_number == start + 140
    error = rpc_error(post, "evm_revert", snap)
    assert error["code"] == -32000 and "no longer kept" in error["message"]
    assert w3.eth.block_number == start + 140  # nothing changed
    assert send(w3, {"to": KEYS[6].address, "value": 1})["status"] == 1


# --- mining and time --------------------------------------------------------------------------


def test_automine_off_and_evm_mine(w3: Web3, call: Callable[..., Any]) -> None:
    start = w3.eth.block_number
    call("evm_setAutomine", False)
    try:
        hashes = [
            w3.eth.send_transaction({"from": OWNER.address, "to": KEYS[5].address, "value": i})
            for i in (1, 2)
        ]
        time.sleep(0.3)
        assert w3.eth.block_number == start
        with pytest.raises(TransactionNotFound):
            w3.eth.get_transaction_receipt(hashes[0])
        assert call("evm_mine") == "0"
        receipts = [w3.eth.get_transaction_receipt(h) for h in hashes]
        assert {r["blockNumber"] for r in receipts} == {start + 1}  # one block for both
        assert w3.eth.block_number == start + 1
    finally:
        call("evm_setAutomine", True)
    assert send(w3, {"to": KEYS[5].address, "value": 3})["blockNumber"] == start + 2


def test_hardhat_mine_count_and_interval(w3: Web3, call: Callable[..., Any]) -> None:
    start = w3.eth.block_number
    assert call("hardhat_mine", "0x3", "0x10") is True
    blocks = [w3.eth.get_block(start + i) for i in (1, 2, 3)]
    assert w3.eth.block_number == start + 3
    assert blocks[1]["timestamp"] - blocks[0]["timestamp"] == 16
    assert blocks[2]["timestamp"] - blocks[1]["timestamp"] == 16
    assert all(not b["transactions"] for b in blocks)
    call("hardhat_mine")
    assert w3.eth.block_number == start + 4
    next_block = send(w3, {"to": KEYS[5].address, "value": 1})
    assert w3.eth.get_block(next_block["blockNumber"])["timestamp"] > blocks[2]["timestamp"]


def test_increase_time_and_next_block_timestamp(
    w3: Web3, call: Callable[..., Any], post: Callable[..., HttpReply]
) -> None:
    head = w3.eth.get_block("latest")["timestamp"]
    total = int(call("evm_increaseTime", 3600))
    assert total >= 3600
    assert int(call("evm_increaseTime", "0x0")) == total  # hex quantity; decimal string answer
    call("evm_mine")
    assert w3.eth.get_block("latest")["timestamp"] >= max(head + 1, int(time.time()) + 3600)

    head = w3.eth.get_block("latest")["timestamp"]
    target = head + 100_000
    assert call("evm_setNextBlockTimestamp", target) == str(target)
    receipt = send(w3, {"to": KEYS[5].address, "value": 1})
    assert w3.eth.get_block(receipt["blockNumber"])["timestamp"] == target
    call("evm_mine")
    later = w3.eth.get_block("latest")["timestamp"]
    assert target < later < target + 60  # the clock continues from the chosen time

    call("evm_mine", later + 50)
    assert w3.eth.get_block("latest")["timestamp"] == later + 50
    for method in ("evm_setNextBlockTimestamp", "evm_mine"):
        error = rpc_error(post, method, later + 50)
        assert error["code"] == -32000
        assert "lower than or equal to previous block's timestamp" in error["message"]
    assert rpc_error(post, "evm_increaseTime", -5)["code"] == -32602


# --- state edits ------------------------------------------------------------------------------


def test_state_edits_are_visible_at_latest(
    w3: Web3, call: Callable[..., Any], post: Callable[..., HttpReply], node: Node
) -> None:
    target = Account.create().address
    start = w3.eth.block_number
    assert call("hardhat_setBalance", target, hex(10**20)) is True
    assert w3.eth.block_number == start + 1  # each edit is a block of its own
    assert w3.eth.get_balance(target) == 10**20
    assert w3.eth.get_balance(target, start) == 0
    # runtime code: return storage slot 5 (PUSH1 5 SLOAD PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN)
    code = "0x60055460005260206000f3"
    assert call("hardhat_setCode", target, code) is True
    assert w3.eth.get_code(target).to_0x_hex() == code
    value = "0x" + "ab" * 32
    assert call("hardhat_setStorageAt", target, "0x5", value) is True
    assert w3.eth.get_storage_at(target, 5).to_0x_hex() == value
    assert w3.eth.call({"to": target}).to_0x_hex() == value
    assert call("hardhat_setNonce", target, "0x2a") is True
    assert w3.eth.get_transaction_count(target) == 42
    assert w3.eth.block_number == start + 4
    assert w3.eth.get_balance(target) == 10**20  # edits keep the other fields
    error = rpc_error(post, "hardhat_setNonce", target, "0x1")
    assert error["code"] == -32000 and "must not be smaller" in error["message"]
    # storage of an account that did not exist: the account is created
    fresh = Account.create().address
    call("hardhat_setStorageAt", fresh, "0x0", "0x" + "00" * 31 + "01")
    assert w3.eth.get_storage_at(fresh, 0)[-1] == 1
    assert node.chain.world.state_root() == node.chain.head.state_root


# --- impersonation ----------------------------------------------------------------------------


def test_impersonated_account_sends_without_its_key(
    w3: Web3, call: Callable[..., Any], post: Callable[..., HttpReply], node: Node
) -> None:
    whale = Account.create().address
    to = Account.create().address
    call("hardhat_setBalance", whale, hex(10**20))
    tx = {"from": whale, "to": to, "value": "0x64"}
    assert rpc_error(post, "eth_sendTransaction", tx)["message"] == "unknown account"
    assert call("hardhat_impersonateAccount", whale) is True
    tx_hash = call("eth_sendTransaction", tx)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1 and receipt["from"] == whale
    assert w3.eth.get_balance(to) == 100
    assert w3.eth.get_transaction(tx_hash)["from"] == whale
    # the block body keeps the sender beside the fake-signed raw tx
    stored = node.chain.blocks.body(receipt["blockNumber"])
    assert stored is not None and stored[0].sender == bytes.fromhex(whale[2:])
    assert decode_transaction(stored[0].raw, CHAIN_ID, known_sender=stored[0].sender).value == 100
    # a contract deployment from the impersonated account (gas estimated by the node)
    deploy = call("eth_sendTransaction", {"from": whale, "data": "0x600a600c600039600a6000f3"})
    assert w3.eth.wait_for_transaction_receipt(deploy, timeout=30)["status"] == 1
    assert w3.eth.get_transaction_count(whale) == 2
    assert call("eth_accounts") == [OWNER.address.lower()]  # not listed, as Hardhat
    assert rpc_error(post, "personal_sign", "0x00", whale)["message"] == "unknown account"
    assert call("hardhat_stopImpersonatingAccount", whale) is True
    assert call("hardhat_stopImpersonatingAccount", whale) is False
    assert rpc_error(post, "eth_sendTransaction", tx)["message"] == "unknown account"
    # a contract account cannot send (EIP-3607 is enforced by the block executor)
    contract = Account.create().address
    call("hardhat_setCode", contract, "0x00")
    call("hardhat_impersonateAccount", contract)
    error = rpc_error(post, "eth_sendTransaction", {"from": contract, "to": to})
    assert error["code"] == -32000 and "contract account" in error["message"]


# --- refusal on other nodes -------------------------------------------------------------------

DEV_METHODS = [
    ("evm_mine", []),
    ("hardhat_mine", ["0x2", "0x1"]),
    ("evm_setAutomine", [False]),
    ("evm_increaseTime", [10]),
    ("evm_setNextBlockTimestamp", [10]),
    ("evm_snapshot", []),
    ("evm_revert", ["0x1"]),
    ("hardhat_setBalance", ["0x" + "11" * 20, "0x1"]),
    ("hardhat_setCode", ["0x" + "11" * 20, "0x00"]),
    ("hardhat_setNonce", ["0x" + "11" * 20, "0x1"]),
    ("hardhat_setStorageAt", ["0x" + "11" * 20, "0x0", "0x" + "00" * 32]),
    ("hardhat_impersonateAccount", ["0x" + "11" * 20]),
    ("hardhat_stopImpersonatingAccount", ["0x" + "11" * 20]),
]


def test_dev_methods_refused_on_a_non_dev_node(tmp_path: Path) -> None:
    node = make_node(tmp_path, dev=False)
    try:
        dispatcher = Dispatcher(node, build_methods(node), max_batch=10)
        for method, params in DEV_METHODS:
            with pytest.raises(RpcError) as info:
                dispatcher.call(method, params, Session("http"))
            assert info.value.code == -32601, method
            assert "development chains only" in info.value.message
        head = node.chain.head.block_number
        assert head == 0  # nothing was mined
    finally:
        node.stop()


def test_dev_methods_are_served_on_a_dev_node(call: Callable[..., Any]) -> None:
    assert call("hardhat_impersonateAccount", "0x" + "11" * 20) is True
    assert call("hardhat_stopImpersonatingAccount", "0x" + "11" * 20) is True


# --- unlimited contract size ------------------------------------------------------------------


@pytest.fixture(scope="module")
def unlimited_w3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web3]:
    home = tmp_path_factory.mktemp("unlimited")
    plain = make_node(home)
    plain.stop()
    node = Node(
        home,
        plain.config,
        plain.genesis,
        dev=True,
        dev_keys={bytes.fromhex(OWNER.address[2:]): bytes(OWNER.key)},
        allow_unlimited_contract_size=True,
    )
    node.start()
    server = ServerThread(node, RpcConfig(port=0))  # default body limit: big initcode
    try:
        yield Web3(HTTPProvider(server.url, request_kwargs={"timeout": 30}))
    finally:
        server.stop()
        node.stop()


def deploy_big(w3: Web3) -> Any:
    return send(w3, {"data": BIG_INIT_CODE, "gas": BIG_DEPLOY_GAS})


def test_unlimited_contract_size_deploys_big_code_on_devnet(unlimited_w3: Web3) -> None:
    # estimation honours the flag too, so clients that estimate before sending can deploy
    estimate = unlimited_w3.eth.estimate_gas({"from": OWNER.address, "data": BIG_INIT_CODE})
    assert 0 < estimate <= BIG_DEPLOY_GAS
    receipt = deploy_big(unlimited_w3)
    assert receipt["status"] == 1
    assert len(unlimited_w3.eth.get_code(receipt["contractAddress"])) == 30_000
    # initcode above EIP-3860's 49,152 bytes too: 50,000 bytes (STOP first, so nothing runs)
    receipt = send(unlimited_w3, {"data": "0x" + "00" * 50_000, "gas": BIG_DEPLOY_GAS})
    assert receipt["status"] == 1


def test_devnet_has_the_unlimited_contract_size_flag() -> None:
    result = CliRunner().invoke(devnet_command, ["--help"])
    assert result.exit_code == 0 and "--allow-unlimited-contract-size" in result.output


def test_contract_size_limit_applies_elsewhere(w3: Web3, tmp_path: Path) -> None:
    receipt = deploy_big(w3)  # the module's dev node, started without the flag
    assert receipt["status"] == 0
    assert w3.eth.get_code(receipt["contractAddress"]) == b""
    genesis = parse_genesis({"chain_id": CHAIN_ID})
    with pytest.raises(ValueError, match="development chains only"):
        Node(tmp_path, NodeConfig(), genesis, allow_unlimited_contract_size=True)


# --- free-transfer counts across a quota window -----------------------------------------------


def test_rewind_restores_free_transfer_counts(tmp_path: Path) -> None:
    """Quota window of 3 blocks: rewinding into the previous window recounts it."""
    sender, to = KEYS[2], KEYS[3].address
    genesis = parse_genesis(
        {
            "chain_id": CHAIN_ID,
            "timestamp": 1_700_000_000,
            "params": {"free_tx_window": 3},
            "alloc": {sender.address: {"balance": str(FUNDS)}},
        }
    )
    node = Node(tmp_path, NodeConfig(), genesis, dev=True)  # not started: calls run inline
    tools = node.dev_tools
    assert tools is not None
    who = bytes.fromhex(sender.address[2:])
    try:
        snaps = {}
        for nonce in range(4):  # blocks 1..4: windows 0, 0, 1, 1
            snaps[node.chain.head.block_number] = tools.snapshot()
            node.submit_raw_transaction(bytes.fromhex(signed_transfer(sender, to, 1, nonce, 0)[2:]))
            block = node.producer.produce(1)
            assert len(block.transactions) == 1

        def used(window: int) -> int:
            return FreeTxCounter(node.chain.db, window).committed(who)

        assert node.chain.head.block_number == 4
        assert (used(0), used(1)) == (0, 2)  # window 1: blocks 3 and 4; window 0 dropped
        assert tools.revert(snaps[3]) is True  # same window: subtract
        assert node.chain.head.block_number == 3
        assert (used(0), used(1)) == (0, 1)
        assert tools.revert(snaps[2]) is True  # back into window 0: recount blocks 1 and 2
        assert node.chain.head.block_number == 2
        assert (used(0), used(1)) == (2, 0)
        with node.chain.state_at() as state:
            assert state.get_nonce(who) == 2
    finally:
        node.chain.close()
