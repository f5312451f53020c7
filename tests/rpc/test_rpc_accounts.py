"""Node-held accounts: eth_accounts, eth_sendTransaction, eth_signTransaction, eth_sign,
personal_sign and eth_signTypedData_v4 with web3.py against an automining dev node, plus
keystore unlocking (``cmt node --unlock``) on a non-dev node.

The module's dev node holds the key of ``KEYS[0]`` only; the other funded keys are unknown to
it. Signatures are checked with eth_account's ``recover_message``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from rpc_harness import KEYS, HttpReply, make_node
from web3 import Web3

from cybermiles.cli.init import create_home, default_genesis
from cybermiles.cli.node_cmd import node_command
from cybermiles.node.accounts import UnlockError, parse_unlock_list, unlock_keystore
from cybermiles.node.config import KEYSTORE_DIR, NodeConfig
from cybermiles.node.node import Node
from cybermiles.rpc.dispatch import Dispatcher
from cybermiles.rpc.errors import RpcError
from cybermiles.rpc.methods import build_methods
from cybermiles.rpc.session import Session

ARTIFACT = Path(__file__).resolve().parents[2] / "contracts" / "build" / "TestToken.json"
GWEI = 10**9
OWNER = KEYS[0]  # the node holds this key
STRANGER = KEYS[1]  # funded, key unknown to the node

TYPED_DATA: dict[str, Any] = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [
            {"name": "from", "type": "Person"},
            {"name": "to", "type": "Person"},
            {"name": "contents", "type": "string"},
        ],
    },
    "primaryType": "Mail",
    "domain": {
        "name": "Ether Mail",
        "version": "1",
        "chainId": 1234,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!",
    },
}


def rpc_error(post: Callable[..., HttpReply], method: str, *params: Any) -> dict[str, Any]:
    reply = post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    doc = reply.json()
    assert "error" in doc, doc
    return doc["error"]


# --- eth_accounts and eth_sendTransaction -----------------------------------------------------


def test_accounts_lists_the_dev_accounts(w3: Web3) -> None:
    assert w3.eth.accounts == [OWNER.address]


def test_send_transaction_transfer(w3: Web3) -> None:
    to = Account.create().address
    tx_hash = w3.eth.send_transaction({"from": OWNER.address, "to": to, "value": 12345})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1 and receipt["from"] == OWNER.address
    assert w3.eth.get_balance(to) == 12345


def test_send_transaction_fills_the_defaults(
    w3: Web3, node: Node, call: Callable[..., Any]
) -> None:
    """Raw JSON (web3.py fills gas itself): nonce, gas, fees and chain id come from the node."""
    to = Account.create().address
    before = w3.eth.get_balance(OWNER.address)
    nonce = w3.eth.get_transaction_count(OWNER.address)
    tx_hash = call("eth_sendTransaction", {"from": OWNER.address, "to": to, "value": "0x3039"})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    tx = w3.eth.get_transaction(tx_hash)
    price = node.chain.params.min_gas_price
    assert tx["type"] == 2 and tx["nonce"] == nonce and tx["chainId"] == 1234
    assert tx["maxFeePerGas"] == tx["maxPriorityFeePerGas"] == price
    assert tx["gas"] == 21000 == receipt["gasUsed"]  # the estimate, x1.0
    assert w3.eth.get_balance(to) == 12345
    assert w3.eth.get_balance(OWNER.address) == before - 12345 - 21000 * price


def test_send_transaction_with_gas_price_is_legacy(w3: Web3) -> None:
    tx_hash = w3.eth.send_transaction(
        {"from": OWNER.address, "to": STRANGER.address, "value": 1, "gasPrice": 2 * GWEI}
    )
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["status"] == 1
    tx = w3.eth.get_transaction(tx_hash)
    assert tx["type"] == 0 and tx["gasPrice"] == 2 * GWEI


def test_send_transaction_deploys_a_contract(w3: Web3) -> None:
    artifact = json.loads(ARTIFACT.read_text())
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = factory.constructor(10**21).transact({"from": OWNER.address})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1 and receipt["contractAddress"]
    token = w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])
    assert token.functions.balanceOf(OWNER.address).call() == 10**21
    # and a call through the same path: gas estimated for transfer()
    to = Account.create().address
    tx_hash = token.functions.transfer(to, 5).transact({"from": OWNER.address})
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["status"] == 1
    assert token.functions.balanceOf(to).call() == 5


def test_send_transaction_revert_is_reported_like_estimate_gas(
    w3: Web3, post: Callable[..., HttpReply]
) -> None:
    artifact = json.loads(ARTIFACT.read_text())
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(
        factory.constructor(1).transact({"from": OWNER.address}), timeout=30
    )
    token = w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])
    data = token.encode_abi("transfer", [STRANGER.address, 2])
    error = rpc_error(
        post,
        "eth_sendTransaction",
        {"from": OWNER.address, "to": receipt["contractAddress"], "data": data},
    )
    assert error["code"] == 3 and error["message"] == "execution reverted"
    assert error["data"].startswith("0x")  # InsufficientBalance(1, 2)


def test_unknown_account_is_refused(post: Callable[..., HttpReply]) -> None:
    tx = {"from": STRANGER.address, "to": OWNER.address, "value": "0x1"}
    for method, params in [
        ("eth_sendTransaction", [tx]),
        ("eth_signTransaction", [tx]),
        ("eth_sign", [STRANGER.address, "0x00"]),
        ("personal_sign", ["0x00", STRANGER.address]),
        ("eth_signTypedData_v4", [STRANGER.address, TYPED_DATA]),
    ]:
        error = rpc_error(post, method, *params)
        assert error == {"code": -32000, "message": "unknown account"}, method


def test_send_transaction_bad_params(post: Callable[..., HttpReply]) -> None:
    error = rpc_error(post, "eth_sendTransaction", {"to": OWNER.address})
    assert error["code"] == -32602 and "from" in error["message"]
    error = rpc_error(
        post, "eth_sendTransaction", {"from": OWNER.address, "to": OWNER.address, "chainId": "0x1"}
    )
    assert error["code"] == -32000 and "chainId" in error["message"]
    error = rpc_error(
        post,
        "eth_sendTransaction",
        {"from": OWNER.address, "gasPrice": "0x1", "maxFeePerGas": "0x1"},
    )
    assert error["code"] == -32000 and "both gasPrice" in error["message"]


# --- signing ----------------------------------------------------------------------------------


def test_sign_transaction_decodes_to_the_sender(w3: Web3, call: Callable[..., Any]) -> None:
    tx = {"from": OWNER.address, "to": STRANGER.address, "value": "0x7", "nonce": "0x50"}
    result = call("eth_signTransaction", tx)
    raw = bytes.fromhex(result["raw"][2:])
    assert Account.recover_transaction(raw) == OWNER.address
    assert result["tx"]["from"] == OWNER.address.lower()
    assert result["tx"]["nonce"] == "0x50" and result["tx"]["gas"] == "0x5208"
    assert result["tx"]["hash"] == Web3.keccak(raw).to_0x_hex()
    assert w3.eth.get_transaction_count(OWNER.address) < 0x50  # nothing was sent


@pytest.mark.parametrize(
    ("fields", "tx_type"),
    [
        ({"gasPrice": "0x3b9aca00"}, "0x0"),
        ({"type": "0x0"}, "0x0"),
        ({"gasPrice": "0x3b9aca00", "accessList": [{"address": "0x" + "22" * 20}]}, "0x1"),
        ({"type": "0x1"}, "0x1"),
        ({"maxPriorityFeePerGas": "0x1"}, "0x2"),
    ],
)
def test_sign_transaction_envelopes(
    call: Callable[..., Any], fields: dict[str, Any], tx_type: str
) -> None:
    tx = {"from": OWNER.address, "to": STRANGER.address, "value": "0x1", **fields}
    result = call("eth_signTransaction", tx)
    assert result["tx"]["type"] == tx_type
    raw = bytes.fromhex(result["raw"][2:])
    assert Account.recover_transaction(raw) == OWNER.address
    if tx_type == "0x2":  # a given tip below min_gas_price keeps the default fee cap
        assert result["tx"]["maxPriorityFeePerGas"] == "0x1"
        assert result["tx"]["maxFeePerGas"] == hex(GWEI)


def test_sign_transaction_refuses_mixed_envelopes(post: Callable[..., HttpReply]) -> None:
    base = {"from": OWNER.address, "to": STRANGER.address}
    for fields in (
        {"type": "0x2", "gasPrice": "0x1"},
        {"type": "0x0", "maxFeePerGas": "0x1"},
        {"type": "0x3"},
        {"authorizationList": [AUTHORIZATION]},
    ):
        error = rpc_error(post, "eth_signTransaction", {**base, **fields})
        assert error["code"] == -32602, fields
    assert "not supported" in error["message"]


AUTHORIZATION = {
    "chainId": "0x4d2",
    "address": "0x" + "33" * 20,
    "nonce": "0x0",
    "yParity": "0x0",
    "r": "0x1",
    "s": "0x1",
}


def test_eth_sign_and_personal_sign(call: Callable[..., Any], w3: Web3) -> None:
    message = b"hello \x00 cybermiles"
    data = "0x" + message.hex()
    for signature in (
        call("eth_sign", OWNER.address, data),
        call("personal_sign", data, OWNER.address),
        call("personal_sign", data, OWNER.address, "ignored password"),
        w3.eth.sign(OWNER.address, data=message).to_0x_hex(),
    ):
        assert len(signature) == 2 + 130 and int(signature[-2:], 16) in (27, 28)
        signer = Account.recover_message(encode_defunct(primitive=message), signature=signature)
        assert signer == OWNER.address


def test_sign_typed_data_v4(call: Callable[..., Any], post: Callable[..., HttpReply]) -> None:
    expected = encode_typed_data(full_message=TYPED_DATA)
    for typed in (TYPED_DATA, json.dumps(TYPED_DATA)):
        signature = call("eth_signTypedData_v4", OWNER.address, typed)
        assert Account.recover_message(expected, signature=signature) == OWNER.address
    error = rpc_error(post, "eth_signTypedData_v4", OWNER.address, {"types": {}})
    assert error["code"] == -32602 and "typed" in error["message"]
    error = rpc_error(post, "eth_signTypedData_v4", OWNER.address, "{not json")
    assert error["code"] == -32602


# --- keystore unlocking on a non-dev node -----------------------------------------------------


def write_keystore(home: Path, key: bytes, password: str) -> Path:
    """A keystore v3 file as `cmt account new` writes it, with a cheap scrypt for tests."""
    account = Account.from_key(key)
    directory = home / KEYSTORE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"UTC--2024-01-01T00-00-00.000000000Z--{account.address[2:].lower()}"
    path.write_text(json.dumps(Account.encrypt(key, password, iterations=2)))
    return path


@pytest.fixture(scope="module")
def keystore_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("keystore-home")
    write_keystore(home, bytes(KEYS[2].key), "two")
    write_keystore(home, bytes(KEYS[3].key), "three")
    (home / "passwords.txt").write_text("two\nthree\n")
    (home / "wrong.txt").write_text("nope\n")
    return home


def test_unlock_keystore_rules(keystore_home: Path) -> None:
    directory = keystore_home / KEYSTORE_DIR
    a2, a3 = (bytes.fromhex(k.address[2:]) for k in (KEYS[2], KEYS[3]))
    keys = unlock_keystore(directory, [KEYS[3].address, KEYS[2].address], ["three", "two"])
    assert keys == {a3: bytes(KEYS[3].key), a2: bytes(KEYS[2].key)}
    # indexes follow the sorted file names (which end in the address); the last password
    # line serves every later account
    first, second = sorted([KEYS[2], KEYS[3]], key=lambda k: k.address.lower())
    passwords = {KEYS[2].address: "two", KEYS[3].address: "three"}
    only = unlock_keystore(directory, ["1"], [passwords[second.address]])
    assert list(only) == [bytes.fromhex(second.address[2:])]
    if passwords[first.address] == passwords[second.address]:  # pragma: no cover
        raise AssertionError("test keys need different passwords")
    with pytest.raises(UnlockError, match="wrong password"):
        unlock_keystore(directory, ["0", "1"], [passwords[first.address]])
    with pytest.raises(UnlockError, match="wrong password"):
        unlock_keystore(directory, [KEYS[2].address], ["three"])
    with pytest.raises(UnlockError, match="no keystore file"):
        unlock_keystore(directory, [KEYS[4].address], ["x"])
    with pytest.raises(UnlockError, match="out of range"):
        unlock_keystore(directory, ["5"], ["x"])
    with pytest.raises(UnlockError, match="--unlock"):
        parse_unlock_list("0xabc,,")


@pytest.fixture(scope="module")
def unlocked_node(keystore_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    keys = unlock_keystore(keystore_home / KEYSTORE_DIR, [KEYS[2].address], ["two"])
    node = make_node(tmp_path_factory.mktemp("unlocked"), dev=False)
    node.stop()  # make_node's dev keys are ignored on a non-dev node; rebuild with unlocked keys
    node = Node(node.home, node.config, node.genesis, dev=False, unlocked_keys=keys)
    node.start()
    yield node
    node.stop()


def rpc(node: Node, method: str, *params: Any) -> Any:
    return Dispatcher(node, build_methods(node), max_batch=10).call(
        method, list(params), Session("http")
    )


def test_non_dev_node_signs_with_unlocked_accounts_only(unlocked_node: Node) -> None:
    owner = KEYS[2]
    assert rpc(unlocked_node, "eth_accounts") == [owner.address.lower()]
    signature = rpc(unlocked_node, "personal_sign", "0x01", owner.address)
    assert Account.recover_message(encode_defunct(b"\x01"), signature=signature) == owner.address
    tx_hash = rpc(
        unlocked_node, "eth_sendTransaction", {"from": owner.address, "to": KEYS[0].address}
    )
    receipt = None
    for _ in range(300):
        receipt = rpc(unlocked_node, "eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            break
        time.sleep(0.05)
    assert receipt is not None and receipt["status"] == "0x1"
    with pytest.raises(RpcError, match="unknown account") as info:
        rpc(unlocked_node, "eth_sendTransaction", {"from": KEYS[0].address, "to": owner.address})
    assert info.value.code == -32000


def test_cmt_node_unlock_errors(keystore_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    create_home(home, default_genesis(77), NodeConfig())
    for path in (keystore_home / KEYSTORE_DIR).iterdir():
        (home / KEYSTORE_DIR / path.name).write_text(path.read_text())
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(node_command, ["--home", str(home), *args])
        assert result.exit_code == 1, result.output
        return result.output

    assert "--unlock needs --password" in run("--unlock", KEYS[2].address)
    assert "wrong password" in run(
        "--unlock", KEYS[2].address, "--password", str(keystore_home / "wrong.txt")
    )
    assert "no keystore file" in run(
        "--unlock", KEYS[5].address, "--password", str(keystore_home / "passwords.txt")
    )
    assert "cannot read password file" in run(
        "--unlock", KEYS[2].address, "--password", str(tmp_path / "missing.txt")
    )
