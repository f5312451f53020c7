"""eth_getProof (EIP-1186) against an automining node running TestToken.

Every proof is checked twice: with our ``verify_proof`` and with py-trie's
``HexaryTrie.get_from_proof``, against the block's stateRoot (account proofs) and the account's
storageHash (storage proofs).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from rpc_harness import CHAIN_ID, FUNDS, KEYS, HttpReply
from trie import HexaryTrie
from web3 import Web3

from cybermiles.crypto.keccak import EMPTY_KECCAK, keccak256
from cybermiles.node.node import Node
from cybermiles.rpc.methods.proof import MAX_KEYS
from cybermiles.state.trie import BLANK_ROOT, verify_proof

GWEI = 10**9
SUPPLY = 10**24
ARTIFACT = Path(__file__).resolve().parents[2] / "contracts" / "build" / "TestToken.json"
OWNER, ALICE, BOB = KEYS[0], KEYS[1], KEYS[2]
NOBODY = "0x" + "5a" * 20


def balance_slot(holder: str) -> int:
    """TestToken's ``balanceOf`` mapping lives at slot 0."""
    return int.from_bytes(keccak256(bytes(12) + bytes.fromhex(holder[2:]) + bytes(32)), "big")


def hexbytes(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def send(w3: Web3, account: LocalAccount, **tx: Any) -> Any:
    """Sign an EIP-1559 transaction (nonce, chain id and fees filled in) and await its receipt."""
    tx = {
        "chainId": CHAIN_ID,
        "nonce": w3.eth.get_transaction_count(account.address),
        "maxFeePerGas": 2 * GWEI,
        "maxPriorityFeePerGas": GWEI,
        **tx,
    }
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)
    assert receipt.status == 1
    return receipt


@pytest.fixture(scope="module")
def token(w3: Web3) -> str:
    """TestToken deployed by OWNER, with 1000 units sent to ALICE; its lowercase address."""
    artifact = json.loads(ARTIFACT.read_text())
    data = artifact["bytecode"] + abi_encode(["uint256"], [SUPPLY]).hex()
    receipt = send(w3, OWNER, data=data, gas=3_000_000)
    contract = w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])
    transfer = contract.functions.transfer(ALICE.address, 1000)
    send(w3, OWNER, to=contract.address, data=transfer._encode_transaction_data(), gas=100_000)
    send(w3, BOB, to=ALICE.address, value=5, gas=21_000)
    return str(receipt.contractAddress).lower()


def rpc_error(post: Callable[..., HttpReply], method: str, *params: Any) -> dict[str, Any]:
    doc = post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()
    assert "error" in doc, doc
    return doc["error"]


def py_trie_get(root: bytes, key: bytes, proof: list[str]) -> bytes:
    """py-trie's verification (``b""`` for a proven absence; raises on a bad proof)."""
    return bytes(HexaryTrie.get_from_proof(root, key, [rlp.decode(hexbytes(n)) for n in proof]))


def check_account(result: dict[str, Any], state_root: bytes) -> bytes | None:
    """Verify the account proof both ways; return the proven account RLP (None: absent)."""
    key = keccak256(hexbytes(result["address"]))
    nodes = [hexbytes(n) for n in result["accountProof"]]
    proven = verify_proof(state_root, key, nodes)
    assert py_trie_get(state_root, key, result["accountProof"]) == (proven or b"")
    if proven is not None:
        expected = rlp.encode(
            [
                int(result["nonce"], 16),
                int(result["balance"], 16),
                hexbytes(result["storageHash"]),
                hexbytes(result["codeHash"]),
            ]
        )
        assert proven == expected
    return proven


def check_storage(result: dict[str, Any]) -> None:
    """Verify every storage proof both ways against storageHash, with the answered value."""
    root = hexbytes(result["storageHash"])
    for item in result["storageProof"]:
        key = keccak256(int(item["key"], 16).to_bytes(32, "big"))
        nodes = [hexbytes(n) for n in item["proof"]]
        proven = verify_proof(root, key, nodes)
        assert py_trie_get(root, key, item["proof"]) == (proven or b"")
        value = int(item["value"], 16)
        assert proven == (rlp.encode(value) if value else None)


def head(call: Callable[..., Any]) -> dict[str, Any]:
    return dict(call("eth_getBlockByNumber", "latest", False))


def test_contract_account_and_slots(
    token: str, call: Callable[..., Any], check_schema: Callable[..., None]
) -> None:
    block = head(call)
    owner_slot, alice_slot = balance_slot(OWNER.address), balance_slot(ALICE.address)
    keys = [hex(owner_slot), "0x" + alice_slot.to_bytes(32, "big").hex(), "0x2", "0x0"]
    result = call("eth_getProof", token, keys, block["hash"])
    check_schema("eth_getProof", result)
    assert result["address"] == token
    assert check_account(result, hexbytes(block["stateRoot"])) is not None
    assert result["nonce"] == "0x1"  # EIP-161: contracts start at nonce 1
    assert result["balance"] == "0x0"
    code = hexbytes(call("eth_getCode", token))
    assert result["codeHash"] == "0x" + keccak256(code).hex()
    assert result["storageHash"] != "0x" + BLANK_ROOT.hex()
    check_storage(result)
    values = [int(item["value"], 16) for item in result["storageProof"]]
    assert values[:2] == [SUPPLY - 1000, 1000]
    for item, key in zip(result["storageProof"], keys, strict=True):
        assert item["value"] == hex(int(call("eth_getStorageAt", token, key), 16))
        assert item["proof"]  # a non-empty trie: inclusion or exclusion nodes
    assert [item["key"] for item in result["storageProof"]] == keys


def test_eoa_and_absent_account(
    token: str, call: Callable[..., Any], check_schema: Callable[..., None]
) -> None:
    block = head(call)
    root = hexbytes(block["stateRoot"])
    eoa = call("eth_getProof", ALICE.address, ["0x0"], "latest")
    check_schema("eth_getProof", eoa)
    assert check_account(eoa, root) is not None
    assert eoa["address"] == ALICE.address.lower()
    assert int(eoa["balance"], 16) == FUNDS + 5
    assert eoa["nonce"] == "0x0" and eoa["codeHash"] == "0x" + EMPTY_KECCAK.hex()
    assert eoa["storageHash"] == "0x" + BLANK_ROOT.hex()
    assert eoa["storageProof"] == [{"key": "0x0", "value": "0x0", "proof": []}]
    check_storage(eoa)

    absent = call("eth_getProof", NOBODY, ["0x1", "0x" + "00" * 32])
    check_schema("eth_getProof", absent)
    assert absent["accountProof"]  # the root onward: a proof of absence
    assert check_account(absent, root) is None
    assert absent["balance"] == "0x0" and absent["nonce"] == "0x0"
    assert absent["codeHash"] == "0x" + EMPTY_KECCAK.hex()
    assert absent["storageHash"] == "0x" + BLANK_ROOT.hex()
    assert absent["storageProof"] == [
        {"key": "0x1", "value": "0x0", "proof": []},
        {"key": "0x" + "00" * 32, "value": "0x0", "proof": []},
    ]
    check_storage(absent)
    assert call("eth_getProof", NOBODY, [])["storageProof"] == []


def test_key_echo(token: str, call: Callable[..., Any]) -> None:
    """Keys come back as geth echoes them: 32-byte data as data, shorter ones as quantities."""
    keys = ["0x", "0x00", "0x01", "0x0001", "0xABC", "0x" + "0" * 63 + "2", "0x" + "Ff" * 32]
    result = call("eth_getProof", token, keys)
    echoed = [item["key"] for item in result["storageProof"]]
    assert echoed == ["0x0", "0x0", "0x1", "0x1", "0xabc", "0x" + "0" * 63 + "2", "0x" + "ff" * 32]
    check_storage(result)


def test_web3_get_proof(token: str, w3: Web3, call: Callable[..., Any]) -> None:
    address = Web3.to_checksum_address(token)
    slot = balance_slot(ALICE.address)
    proof = w3.eth.get_proof(address, [slot, 7], "latest")
    block = w3.eth.get_block("latest")
    assert proof.address == address
    assert proof.nonce == 1 and proof.balance == 0
    values = [int.from_bytes(item.value, "big") for item in proof.storageProof]  # HexBytes
    assert values == [1000, 0]
    nodes = [bytes(n) for n in proof.accountProof]
    assert verify_proof(bytes(block.stateRoot), keccak256(hexbytes(token)), nodes) is not None
    storage_root = bytes(proof.storageHash)
    for item, key, value in zip(proof.storageProof, [slot, 7], values, strict=True):
        hashed = keccak256(key.to_bytes(32, "big"))
        got = verify_proof(storage_root, hashed, [bytes(n) for n in item.proof])
        assert got == (rlp.encode(value) if value else None)


def test_block_selection(token: str, call: Callable[..., Any], post: Callable[..., Any]) -> None:
    block = head(call)
    number = int(block["number"], 16)
    expected = call("eth_getProof", token, ["0x0"], "latest")
    for ref in (
        "pending",
        "safe",
        "finalized",
        block["number"],
        block["hash"],
        {"blockHash": block["hash"], "requireCanonical": True},
        {"blockNumber": block["number"]},
    ):
        assert call("eth_getProof", token, ["0x0"], ref) == expected, ref
    message = f"proofs are only available for the latest block ({number})"
    for ref in ("earliest", hex(number - 1), call("eth_getBlockByNumber", "0x1", False)["hash"]):
        assert rpc_error(post, "eth_getProof", token, [], ref) == {
            "code": -32000,
            "message": message,
        }
    unknown = rpc_error(post, "eth_getProof", token, [], hex(number + 100))
    assert unknown == {"code": -32000, "message": "header not found"}
    by_hash = rpc_error(post, "eth_getProof", token, [], "0x" + "11" * 32)
    assert by_hash == {"code": -32000, "message": "header for hash not found"}


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ([NOBODY], "missing value for required argument 1"),
        ([NOBODY, "0x0"], "invalid argument 1 (storage_keys): expected an array of storage keys"),
        ([NOBODY, ["0x" + "00" * 33]], "invalid argument 1 (storage_keys.0): hex string has"),
        ([NOBODY, ["0x1", "12"]], "invalid argument 1 (storage_keys.1): hex string without 0x"),
        ([NOBODY, ["0x0"] * (MAX_KEYS + 1)], f"too many keys, max {MAX_KEYS}"),
        (["0x1234", []], "invalid argument 0 (address)"),
        ([NOBODY, [], "newest"], "invalid argument 2 (block)"),
    ],
)
def test_invalid_params(
    token: str, post: Callable[..., HttpReply], params: list[Any], detail: str
) -> None:
    error = rpc_error(post, "eth_getProof", *params)
    assert error["code"] == -32602
    assert detail in error["message"]


def test_proofs_while_blocks_commit(node: Node, w3: Web3) -> None:
    """Blockchain.prove holds the write lock: every proof matches the head it reports."""
    sender, target = KEYS[3], bytes.fromhex(KEYS[4].address[2:])
    done = threading.Event()
    failures: list[BaseException] = []

    def produce() -> None:
        try:
            for _ in range(8):
                send(w3, sender, to=KEYS[4].address, value=1, gas=21_000)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    heads: set[int] = set()
    while not done.is_set() or not heads:
        number, account_proof, account, storage = node.chain.prove(target, [0])
        header = node.chain.blocks.header(number)
        assert header is not None
        assert account is not None
        assert verify_proof(header.state_root, keccak256(target), account_proof) is not None
        assert storage == [(0, [])]
        heads.add(number)
    thread.join()
    assert not failures, failures
    assert len(heads) >= 2  # proofs were taken at several heads
