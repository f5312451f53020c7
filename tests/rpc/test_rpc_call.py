"""eth_call / eth_estimateGas / eth_createAccessList with web3.py against an automining node.

TestToken and Probe are deployed once per module; results are checked against the
execution-apis schemas and errors against geth's shapes (code 3 + revert data for reverts).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector as selector
from rpc_harness import CHAIN_ID, KEYS, HttpReply
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError

from cybermiles.crypto.keccak import keccak256

GWEI = 10**9
SUPPLY = 10**24
BUILD = Path(__file__).resolve().parents[2] / "contracts" / "build"
DEPLOYER = KEYS[1]
TO = Web3.to_checksum_address("0x" + "ab" * 20)
POOR = Web3.to_checksum_address("0x" + "77" * 20)  # holds nothing


def artifact(name: str) -> dict[str, Any]:
    return json.loads((BUILD / f"{name}.json").read_text())


def calldata(signature: str, types: list[str], args: list[Any]) -> str:
    return "0x" + (selector(signature) + abi_encode(types, args)).hex()


def word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def balance_slot(holder: str) -> int:
    """TestToken's ``balanceOf`` mapping lives at slot 0."""
    return int.from_bytes(keccak256(bytes(12) + bytes.fromhex(holder[2:]) + bytes(32)), "big")


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
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)


class Deployed:
    def __init__(self, w3: Web3) -> None:
        token = artifact("TestToken")
        supply = abi_encode(["uint256"], [SUPPLY]).hex()
        receipt = send(w3, DEPLOYER, data=token["bytecode"] + supply, gas=3_000_000)
        assert receipt.status == 1
        self.token: Contract = w3.eth.contract(address=receipt.contractAddress, abi=token["abi"])
        probe = artifact("Probe")
        receipt = send(w3, DEPLOYER, data=probe["bytecode"], gas=3_000_000)
        assert receipt.status == 1
        self.probe: Contract = w3.eth.contract(address=receipt.contractAddress, abi=probe["abi"])
        self.probe_block = receipt.blockNumber
        bump = send(
            w3,
            DEPLOYER,
            to=self.probe.address,
            data=calldata("bump(uint256)", ["uint256"], [5]),
            gas=200_000,
        )
        assert bump.status == 1


@pytest.fixture(scope="module")
def deployed(w3: Web3) -> Deployed:
    return Deployed(w3)


def rpc_error(post: Callable[..., HttpReply], method: str, *params: Any) -> dict[str, Any]:
    reply = post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    assert reply.status == 200, reply.body
    doc = reply.json()
    assert "result" not in doc, doc
    return doc["error"]


# --- eth_call ---------------------------------------------------------------------------------


def test_call_at_latest_and_older_blocks(
    w3: Web3, call: Callable[..., Any], check_schema: Callable[..., None], deployed: Deployed
) -> None:
    token, holder = deployed.token, DEPLOYER.address
    assert token.functions.balanceOf(holder).call() == SUPPLY
    assert token.functions.symbol().call() == "TT"
    before = w3.eth.block_number
    receipt = send(
        w3,
        DEPLOYER,
        to=token.address,
        data=calldata("transfer(address,uint256)", ["address", "uint256"], [TO, 10]),
        gas=100_000,
    )
    assert receipt.status == 1
    assert token.functions.balanceOf(holder).call() == SUPPLY - 10
    assert token.functions.balanceOf(holder).call(block_identifier=before) == SUPPLY
    assert token.functions.balanceOf(TO).call(block_identifier=receipt.blockNumber) == 10

    probe = deployed.probe
    assert probe.functions.counter().call() == 5
    assert probe.functions.counter().call(block_identifier=deployed.probe_block) == 0
    parent = call("eth_getBlockByNumber", hex(deployed.probe_block), False)
    counter = {"to": probe.address, "input": calldata("counter()", [], [])}
    assert int(call("eth_call", counter, {"blockHash": parent["hash"]}), 16) == 0
    assert call("eth_call", counter, hex(deployed.probe_block - 1)) == "0x"  # no code yet
    raw = call(
        "eth_call",
        {"to": token.address, "data": calldata("balanceOf(address)", ["address"], [holder])},
    )
    assert int(raw, 16) == SUPPLY - 10
    check_schema("eth_call", raw)
    # a creation returns the runtime code; nothing was deployed
    created = call("eth_call", {"from": holder, "input": artifact("Probe")["bytecode"]})
    assert created == artifact("Probe")["deployedBytecode"]
    assert w3.eth.block_number == receipt.blockNumber


def test_revert_reason_surfaces_like_geth(
    w3: Web3, post: Callable[..., HttpReply], deployed: Deployed
) -> None:
    with pytest.raises(ContractLogicError) as info:
        deployed.probe.functions.fail("nope").call()
    assert info.value.message == "execution reverted: nope"
    reason = calldata("Error(string)", ["string"], ["nope"])
    tx = {"to": deployed.probe.address, "input": calldata("fail(string)", ["string"], ["nope"])}
    expected = {"code": 3, "message": "execution reverted: nope", "data": reason}
    assert rpc_error(post, "eth_call", tx, "latest") == expected
    assert rpc_error(post, "eth_estimateGas", tx) == expected
    with pytest.raises(ContractLogicError, match="execution reverted: nope"):
        deployed.probe.functions.fail("nope").estimate_gas()


def test_custom_error_data_is_returned(
    w3: Web3, post: Callable[..., HttpReply], deployed: Deployed
) -> None:
    custom = calldata("InsufficientBalance(uint256,uint256)", ["uint256", "uint256"], [0, 3])
    with pytest.raises(ContractCustomError) as info:
        deployed.token.functions.transfer(TO, 3).call({"from": POOR})
    assert info.value.data == custom
    tx = {
        "from": POOR,
        "to": deployed.token.address,
        "input": calldata("transfer(address,uint256)", ["address", "uint256"], [TO, 3]),
    }
    assert rpc_error(post, "eth_call", tx) == {
        "code": 3,
        "message": "execution reverted",
        "data": custom,
    }


def test_state_overrides(
    call: Callable[..., Any], post: Callable[..., HttpReply], deployed: Deployed
) -> None:
    token = deployed.token.address
    query = {"to": token, "input": calldata("balanceOf(address)", ["address"], [POOR])}
    diff = {token: {"stateDiff": {word(balance_slot(POOR)): word(77)}}}
    assert int(call("eth_call", query, "latest", diff), 16) == 77
    assert int(call("eth_call", query, "latest"), 16) == 0  # nothing stayed
    probe_code = artifact("Probe")["deployedBytecode"]
    fresh = "0x" + "42" * 20
    counter = {"to": fresh, "input": calldata("counter()", [], [])}
    override = {fresh: {"code": probe_code, "state": {word(0): word(9)}}}
    assert int(call("eth_call", counter, "latest", override), 16) == 9
    rich = {POOR: {"balance": hex(10**18), "nonce": "0x5"}}
    assert (
        call("eth_estimateGas", {"from": POOR, "to": TO, "value": "0x1"}, "latest", rich)
        == "0x5208"
    )
    both = {token: {"state": {}, "stateDiff": {}}}
    error = rpc_error(post, "eth_call", query, "latest", both)
    assert error == {"code": -32000, "message": f"account {token} has both 'state' and 'stateDiff'"}


def test_execution_failures_and_bad_input(
    post: Callable[..., HttpReply], deployed: Deployed
) -> None:
    burn = {
        "to": deployed.probe.address,
        "input": calldata("burnGas(uint256)", ["uint256"], [100]),
        "gas": hex(60_000),
    }
    assert rpc_error(post, "eth_call", burn) == {"code": -32000, "message": "out of gas"}
    invalid = {"to": TO, "gas": hex(50_000)}
    overrides = {TO: {"code": "0xfe"}}
    assert rpc_error(post, "eth_call", invalid, "latest", overrides) == {
        "code": -32000,
        "message": "invalid opcode: INVALID",
    }
    paid = {"from": POOR, "to": TO, "value": "0x1", "gas": hex(21_000), "gasPrice": "0x1"}
    assert rpc_error(post, "eth_call", paid) == {
        "code": -32000,
        "message": f"insufficient funds for gas * price + value: address {POOR} have 0 want 21001",
    }
    assert rpc_error(post, "eth_estimateGas", {"from": POOR, "to": TO, "value": "0x1"}) == {
        "code": -32000,
        "message": "insufficient funds for transfer",
    }
    assert rpc_error(post, "eth_estimateGas", dict(burn, gas=hex(100_000))) == {
        "code": -32000,
        "message": "gas required exceeds allowance (100000)",
    }
    low = rpc_error(post, "eth_call", {"to": TO, "gas": hex(20_000)})
    assert low == {"code": -32000, "message": "intrinsic gas too low: have 20000, want 21000"}
    error = rpc_error(post, "eth_call", {"to": "0x12"})
    assert error["code"] == -32602
    assert error["message"].startswith("invalid argument 0 (transaction.to): ")
    error = rpc_error(post, "eth_call", {"to": TO, "data": "0x01", "input": "0x02"})
    assert error["code"] == -32000 and error["message"].startswith('both "data" and "input"')
    error = rpc_error(post, "eth_call", {"to": TO, "chainId": "0x1"})
    assert error == {
        "code": -32000,
        "message": f"chainId does not match node's (have=1, want={CHAIN_ID})",
    }
    assert rpc_error(post, "eth_call", {"to": TO}, "0xffffff") == {
        "code": -32000,
        "message": "header not found",
    }
    assert rpc_error(post, "eth_fillTransaction", {"to": TO})["code"] == -32601


# --- eth_estimateGas --------------------------------------------------------------------------


def test_estimate_plain_transfer(
    w3: Web3, call: Callable[..., Any], check_schema: Callable[..., None]
) -> None:
    assert w3.eth.estimate_gas({"from": KEYS[3].address, "to": TO, "value": 1}) == 21_000
    raw = call("eth_estimateGas", {"from": KEYS[3].address, "to": TO, "value": "0x1"})
    assert raw == "0x5208"
    check_schema("eth_estimateGas", raw)
    priced = {"from": KEYS[3].address, "to": TO, "value": "0x1", "maxFeePerGas": hex(GWEI)}
    assert call("eth_estimateGas", priced, "latest") == "0x5208"


def test_estimate_erc20_transfer_is_enough(w3: Web3, deployed: Deployed) -> None:
    transfer = deployed.token.functions.transfer(KEYS[4].address, 1000)
    estimate = transfer.estimate_gas({"from": DEPLOYER.address})
    data = calldata("transfer(address,uint256)", ["address", "uint256"], [KEYS[4].address, 1000])
    receipt = send(w3, DEPLOYER, to=deployed.token.address, data=data, gas=estimate)
    assert receipt.status == 1
    assert receipt.gasUsed <= estimate <= receipt.gasUsed * 1.02 + 2300
    assert deployed.token.functions.balanceOf(KEYS[4].address).call() == 1000


# --- eth_createAccessList ---------------------------------------------------------------------


def test_create_access_list(
    w3: Web3, call: Callable[..., Any], check_schema: Callable[..., None], deployed: Deployed
) -> None:
    token = deployed.token.address
    data = calldata("transfer(address,uint256)", ["address", "uint256"], [KEYS[5].address, 7])
    tx = {"from": DEPLOYER.address, "to": token, "input": data}
    result = call("eth_createAccessList", tx, "latest")
    check_schema("eth_createAccessList", result)
    slots = sorted([balance_slot(DEPLOYER.address), balance_slot(KEYS[5].address)])
    assert result["accessList"] == [
        {"address": token.lower(), "storageKeys": [word(s) for s in slots]}
    ]
    assert "error" not in result
    # sending the transaction with that list uses exactly the reported gas
    access_list = [{"address": token, "storageKeys": [word(s) for s in slots]}]
    receipt = send(w3, DEPLOYER, to=token, data=data, gas=100_000, accessList=access_list)
    assert receipt.status == 1
    assert receipt.gasUsed == int(result["gasUsed"], 16)

    failing = {"to": deployed.probe.address, "input": calldata("fail(string)", ["string"], ["x"])}
    reverted = call("eth_createAccessList", failing)
    check_schema("eth_createAccessList", reverted)
    assert reverted["error"] == "execution reverted" and reverted["accessList"] == []
    web3_list = w3.eth.create_access_list({"from": DEPLOYER.address, "to": token, "data": data})
    assert [entry["address"] for entry in web3_list["accessList"]] == [token]


def test_call_with_authorization_list(call: Callable[..., Any], deployed: Deployed) -> None:
    """EIP-7702 in a call: the authority runs the delegated code (on its own, empty storage)."""
    authority = KEYS[6]
    nonce = int(call("eth_getTransactionCount", authority.address, "latest"), 16)
    signed = authority.sign_authorization(
        {"chainId": CHAIN_ID, "address": deployed.probe.address, "nonce": nonce}
    )
    auth = {
        "chainId": hex(signed.chain_id),
        "address": "0x" + bytes(signed.address).hex(),
        "nonce": hex(signed.nonce),
        "yParity": hex(signed.y_parity),
        "r": hex(signed.r),
        "s": hex(signed.s),
    }
    counter = {
        "from": DEPLOYER.address,
        "to": authority.address,
        "input": calldata("counter()", [], []),
    }
    assert call("eth_call", counter) == "0x"  # an EOA: no code runs
    delegated = call("eth_call", dict(counter, authorizationList=[auth]))
    assert delegated == word(0)
    assert call("eth_getCode", authority.address, "latest") == "0x"  # nothing stayed
