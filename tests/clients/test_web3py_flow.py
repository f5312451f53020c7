"""web3.py against a real `cmt devnet`: the flows dapps and wallets run, signed locally.

Transactions are signed in the client (``Account.sign_transaction`` or the
``SignAndSendRawMiddlewareBuilder``, which turns ``transact()`` into ``eth_sendRawTransaction``);
nothing depends on the node's own account methods.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from clients_harness import (
    ADDRESS0,
    ADDRESS1,
    DEV_CHAIN_ID,
    ETHER,
    KEY0,
    KEY1,
    Devnet,
    artifact,
    running_devnet,
)
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncWeb3, Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound
from web3.middleware import SignAndSendRawMiddlewareBuilder
from web3.providers import HTTPProvider, WebSocketProvider
from web3.types import TxReceipt

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SUPPLY = 1_000_000 * ETHER
TRANSFER_TOPIC = HexBytes(keccak(text="Transfer(address,address,uint256)"))
INSUFFICIENT_BALANCE = keccak(text="InsufficientBalance(uint256,uint256)")[:4]
RECEIPT_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    with running_devnet(tmp_path_factory.mktemp("web3py-devnet")) as net:
        yield net


@pytest.fixture(scope="module")
def acct0() -> LocalAccount:
    account = Account.from_key(KEY0)
    assert account.address == ADDRESS0
    return account


@pytest.fixture(scope="module")
def acct1() -> LocalAccount:
    account = Account.from_key(KEY1)
    assert account.address == ADDRESS1
    return account


@pytest.fixture(scope="module")
def w3(devnet: Devnet, acct0: LocalAccount, acct1: LocalAccount) -> Web3:
    """Sync HTTP web3 whose ``transact()`` signs locally with accounts #0 and #1."""
    web3 = Web3(HTTPProvider(devnet.url, request_kwargs={"timeout": 15}))
    web3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build([acct0, acct1]), layer=0)
    assert web3.is_connected(), devnet.tail()
    return web3


def wait_receipt(w3: Web3, tx_hash: Any) -> TxReceipt:
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=0.05)


def sign_and_send(w3: Web3, account: LocalAccount, tx: dict[str, Any]) -> HexBytes:
    """Fill nonce/chain id, sign locally, eth_sendRawTransaction; returns the tx hash."""
    tx = {
        **tx,
        "chainId": DEV_CHAIN_ID,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
    }
    signed = account.sign_transaction(tx)
    sent = w3.eth.send_raw_transaction(signed.raw_transaction)
    assert HexBytes(sent) == HexBytes(signed.hash)
    return HexBytes(sent)


def deploy(w3: Web3, account: LocalAccount, name: str, *args: Any) -> tuple[Contract, TxReceipt]:
    build = artifact(name)
    factory = w3.eth.contract(abi=build["abi"], bytecode=build["bytecode"])
    tx = factory.constructor(*args).build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending")}
    )
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = wait_receipt(w3, tx_hash)
    assert receipt["status"] == 1, receipt
    address = receipt["contractAddress"]
    assert address is not None, receipt
    return w3.eth.contract(address=address, abi=build["abi"]), receipt


@pytest.fixture(scope="module")
def token_deployment(w3: Web3, acct0: LocalAccount) -> tuple[Contract, TxReceipt]:
    return deploy(w3, acct0, "TestToken", SUPPLY)


@pytest.fixture(scope="module")
def token(token_deployment: tuple[Contract, TxReceipt]) -> Contract:
    return token_deployment[0]


@pytest.fixture(scope="module")
def probe(w3: Web3, acct0: LocalAccount) -> Contract:
    return deploy(w3, acct0, "Probe")[0]


def transfer_tokens(w3: Web3, token: Contract, sender: str, to: str, value: int) -> TxReceipt:
    """``token.transfer(to, value)`` through ``transact()`` (signed by the middleware)."""
    tx_hash = token.functions.transfer(to, value).transact({"from": sender})
    receipt = wait_receipt(w3, tx_hash)
    assert receipt["status"] == 1, receipt
    return receipt


# --------------------------------------------------------------------------- deploy, transfer


def test_deploy_transfer_balances_and_events(
    w3: Web3,
    token_deployment: tuple[Contract, TxReceipt],
    acct0: LocalAccount,
    acct1: LocalAccount,
) -> None:
    token, deploy_receipt = token_deployment
    assert w3.eth.chain_id == DEV_CHAIN_ID
    assert deploy_receipt["contractAddress"] == token.address
    assert deploy_receipt["to"] is None
    assert len(w3.eth.get_code(token.address)) > 0
    assert token.functions.totalSupply().call() == SUPPLY
    assert token.functions.symbol().call() == "TT"
    assert token.functions.decimals().call() == 18
    # The constructor's mint event is in the deploy receipt.
    (mint,) = token.events.Transfer().process_receipt(deploy_receipt)
    assert mint["args"] == {"from": "0x" + "00" * 20, "to": acct0.address, "value": SUPPLY}

    before0 = token.functions.balanceOf(acct0.address).call()
    before1 = token.functions.balanceOf(acct1.address).call()
    amount = 250 * ETHER
    receipt = transfer_tokens(w3, token, acct0.address, acct1.address, amount)
    assert receipt["from"] == acct0.address and receipt["to"] == token.address
    assert receipt["blockNumber"] > deploy_receipt["blockNumber"]
    assert receipt["gasUsed"] > 21_000 and receipt["effectiveGasPrice"] > 0
    assert receipt["type"] == 2  # web3.py fills an EIP-1559 transaction by default

    assert token.functions.balanceOf(acct0.address).call() == before0 - amount
    assert token.functions.balanceOf(acct1.address).call() == before1 + amount

    (event,) = token.events.Transfer().process_receipt(receipt)
    assert event["event"] == "Transfer"
    assert event["args"] == {"from": acct0.address, "to": acct1.address, "value": amount}
    assert event["transactionHash"] == receipt["transactionHash"]
    assert event["blockHash"] == receipt["blockHash"]
    assert event["address"] == token.address

    # eth_getLogs through the contract event API, from the deploy block on.
    logs = token.events.Transfer.get_logs(from_block=deploy_receipt["blockNumber"])
    by_tx = {log["transactionHash"]: log for log in logs}
    assert by_tx[deploy_receipt["transactionHash"]]["args"]["value"] == SUPPLY
    assert by_tx[receipt["transactionHash"]]["args"] == event["args"]
    assert [log["blockNumber"] for log in logs] == sorted(log["blockNumber"] for log in logs)
    # ... with an indexed-argument filter (a topic filter on the node).
    to_one = token.events.Transfer.get_logs(
        from_block=deploy_receipt["blockNumber"], argument_filters={"to": acct1.address}
    )
    assert receipt["transactionHash"] in {log["transactionHash"] for log in to_one}
    assert all(log["args"]["to"] == acct1.address for log in to_one)
    # ... and by block hash.
    in_block = token.events.Transfer.get_logs(block_hash=receipt["blockHash"])
    assert [log["transactionHash"] for log in in_block] == [receipt["transactionHash"]]

    tx = w3.eth.get_transaction(receipt["transactionHash"])
    assert tx["from"] == acct0.address and tx["to"] == token.address
    assert tx["blockHash"] == receipt["blockHash"] and tx["type"] == 2
    block = w3.eth.get_block(receipt["blockNumber"])
    assert receipt["transactionHash"] in block["transactions"]
    assert block["baseFeePerGas"] == 0


# --------------------------------------------------------------------------- filters


def test_log_filter_and_block_filter(
    w3: Web3, token: Contract, acct0: LocalAccount, acct1: LocalAccount
) -> None:
    log_filter = w3.eth.filter({"address": token.address, "topics": [TRANSFER_TOPIC]})
    block_filter = w3.eth.filter("latest")
    event_filter = token.events.Transfer.create_filter(
        from_block="latest", argument_filters={"from": acct1.address}
    )
    assert w3.eth.get_filter_changes(log_filter.filter_id) == []
    assert w3.eth.get_filter_changes(block_filter.filter_id) == []

    first = transfer_tokens(w3, token, acct0.address, acct1.address, 3 * ETHER)
    second = transfer_tokens(w3, token, acct1.address, acct0.address, 1 * ETHER)

    changes = w3.eth.get_filter_changes(log_filter.filter_id)
    assert [log["transactionHash"] for log in changes] == [
        first["transactionHash"],
        second["transactionHash"],
    ]
    decoded = [token.events.Transfer().process_log(log)["args"] for log in changes]
    assert decoded == [
        {"from": acct0.address, "to": acct1.address, "value": 3 * ETHER},
        {"from": acct1.address, "to": acct0.address, "value": 1 * ETHER},
    ]
    assert w3.eth.get_filter_changes(log_filter.filter_id) == []  # changes are consumed

    hashes = w3.eth.get_filter_changes(block_filter.filter_id)
    assert [HexBytes(h) for h in hashes] == [first["blockHash"], second["blockHash"]]
    assert w3.eth.get_filter_changes(block_filter.filter_id) == []

    # The contract-level filter only matched the transfer from account #1.
    entries = event_filter.get_new_entries()
    assert [e["transactionHash"] for e in entries] == [second["transactionHash"]]
    assert entries[0]["args"]["value"] == 1 * ETHER

    # eth_getFilterLogs: every log the filter's range matches, not just the new changes.
    ranged = w3.eth.filter({"fromBlock": first["blockNumber"], "address": token.address})
    all_logs = w3.eth.get_filter_logs(ranged.filter_id)
    assert [log["transactionHash"] for log in all_logs] == [
        first["transactionHash"],
        second["transactionHash"],
    ]

    filter_ids = (log_filter, block_filter, event_filter, ranged)
    for filter_id in (f.filter_id for f in filter_ids):
        assert w3.eth.uninstall_filter(filter_id) is True
    assert w3.eth.uninstall_filter(log_filter.filter_id) is False


# --------------------------------------------------------------------------- WebSocket


async def _subscriptions_flow(
    ws_url: str, token: Contract, sender: LocalAccount, to: str, value: int
) -> dict[str, Any]:
    async with AsyncWeb3(WebSocketProvider(ws_url)) as aw3:
        assert await aw3.eth.chain_id == DEV_CHAIN_ID
        heads_id = await aw3.eth.subscribe("newHeads")
        logs_id = await aw3.eth.subscribe(
            "logs", {"address": token.address, "topics": [TRANSFER_TOPIC]}
        )
        assert heads_id != logs_id

        # Build, sign and send the transfer over the same socket.
        tx = token.functions.transfer(to, value).build_transaction(
            {
                "from": sender.address,
                "chainId": DEV_CHAIN_ID,
                "nonce": await aw3.eth.get_transaction_count(sender.address, "pending"),
                "gas": 100_000,
                "maxFeePerGas": await aw3.eth.gas_price,
                "maxPriorityFeePerGas": await aw3.eth.max_priority_fee,
            }
        )
        signed = sender.sign_transaction(tx)
        tx_hash = await aw3.eth.send_raw_transaction(signed.raw_transaction)

        got: dict[str, Any] = {"tx_hash": HexBytes(tx_hash)}

        async def collect() -> None:
            async for message in aw3.socket.process_subscriptions():
                if message["subscription"] == heads_id:
                    got.setdefault("head", message["result"])
                elif message["subscription"] == logs_id:
                    got.setdefault("log", message["result"])
                if "head" in got and "log" in got:
                    return

        await asyncio.wait_for(collect(), timeout=20)
        got["receipt"] = await aw3.eth.wait_for_transaction_receipt(
            tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=0.05
        )
        assert await aw3.eth.unsubscribe(heads_id) is True
        assert await aw3.eth.unsubscribe(logs_id) is True
        return got


def test_websocket_new_heads_and_logs_subscriptions(
    devnet: Devnet, token: Contract, acct0: LocalAccount, acct1: LocalAccount
) -> None:
    got = asyncio.run(_subscriptions_flow(devnet.ws_url, token, acct0, acct1.address, 7 * ETHER))
    receipt = got["receipt"]
    assert receipt["status"] == 1

    head = got["head"]
    assert head["number"] == receipt["blockNumber"], head
    assert HexBytes(head["hash"]) == receipt["blockHash"]
    assert head["baseFeePerGas"] == 0
    for field in ("parentHash", "stateRoot", "transactionsRoot", "receiptsRoot", "timestamp"):
        assert field in head, (field, head)

    log = got["log"]
    assert HexBytes(log["transactionHash"]) == got["tx_hash"] == receipt["transactionHash"]
    assert log["blockNumber"] == receipt["blockNumber"]
    assert to_checksum_address(log["address"]) == token.address
    assert log["removed"] is False
    args = token.events.Transfer().process_log(log)["args"]
    assert args == {"from": acct0.address, "to": acct1.address, "value": 7 * ETHER}


# --------------------------------------------------------------------------- reverts


def test_revert_reason_from_call_and_estimate_gas(
    w3: Web3, probe: Contract, acct0: LocalAccount
) -> None:
    with pytest.raises(ContractLogicError) as call_error:
        probe.functions.fail("nope").call({"from": acct0.address})
    assert type(call_error.value) is ContractLogicError
    assert call_error.value.message == "execution reverted: nope"
    # data: Error(string) selector + ABI-encoded "nope"
    assert str(call_error.value.data).startswith("0x08c379a0")

    with pytest.raises(ContractLogicError) as estimate_error:
        probe.functions.fail("nope").estimate_gas({"from": acct0.address})
    assert estimate_error.value.message == "execution reverted: nope"

    # A reverting transaction sent anyway (explicit gas, no estimate) is mined with status 0.
    tx_hash = sign_and_send(
        w3,
        acct0,
        probe.functions.fail("nope").build_transaction(
            {
                "from": acct0.address,
                "gas": 100_000,
                "maxFeePerGas": w3.eth.gas_price,
                "maxPriorityFeePerGas": w3.eth.max_priority_fee,
            }
        ),
    )
    receipt = wait_receipt(w3, tx_hash)
    assert receipt["status"] == 0, receipt
    assert 21_000 < receipt["gasUsed"] < 100_000


def test_custom_error_of_a_too_large_transfer(
    w3: Web3, token: Contract, acct0: LocalAccount, acct1: LocalAccount
) -> None:
    available = token.functions.balanceOf(acct1.address).call()
    required = available + 1
    with pytest.raises(ContractCustomError) as error:
        token.functions.transfer(acct0.address, required).call({"from": acct1.address})
    data = HexBytes(error.value.data)
    assert data[:4] == INSUFFICIENT_BALANCE, data.hex()
    assert abi_decode(["uint256", "uint256"], data[4:]) == (available, required)

    with pytest.raises(ContractCustomError) as estimate_error:
        token.functions.transfer(acct0.address, required).estimate_gas({"from": acct1.address})
    assert HexBytes(estimate_error.value.data) == data


# --------------------------------------------------------------------------- batch


def test_json_rpc_batch_request(w3: Web3, token: Contract, acct0: LocalAccount) -> None:
    head = w3.eth.block_number
    with w3.batch_requests() as batch:
        batch.add(w3.eth.get_block(0))
        batch.add(w3.eth.get_block("latest"))
        batch.add(w3.eth.get_balance(acct0.address))
        batch.add(w3.eth.get_transaction_count(acct0.address))
        batch.add(w3.eth.get_code(token.address))
        batch.add(token.functions.balanceOf(acct0.address))
        batch.add(w3.net.version)
        responses = batch.execute()
    genesis, latest, balance, nonce, code, token_balance, net_version = responses
    assert genesis["number"] == 0 and genesis["parentHash"] == HexBytes(b"\0" * 32)
    assert latest["number"] >= head
    assert balance == w3.eth.get_balance(acct0.address)
    assert nonce == w3.eth.get_transaction_count(acct0.address)
    assert code == w3.eth.get_code(token.address) and len(code) > 0
    assert token_balance == token.functions.balanceOf(acct0.address).call()
    assert net_version == str(DEV_CHAIN_ID)


# --------------------------------------------------------------------------- wallet flow


def test_metamask_style_eip1559_transfer(w3: Web3, acct0: LocalAccount) -> None:
    """What a wallet does for "send 1.5 CMT": chain id, balance, gas estimate, fee suggestion,
    a signed EIP-1559 transaction, receipt polling, the pending nonce."""
    recipient = Account.create().address
    value = 3 * ETHER // 2
    provider = w3.provider

    def rpc(method: str, *params: Any) -> Any:
        answer = provider.make_request(method, list(params))  # type: ignore[arg-type]
        assert "error" not in answer, (method, params, answer)
        return answer["result"]

    assert int(rpc("eth_chainId"), 16) == DEV_CHAIN_ID
    assert rpc("net_version") == str(DEV_CHAIN_ID)
    balance = int(rpc("eth_getBalance", acct0.address, "latest"), 16)
    assert balance > value
    assert rpc("eth_getCode", recipient, "latest") == "0x"  # a plain transfer, not a call
    request = {"from": acct0.address, "to": recipient, "value": hex(value)}
    gas = int(rpc("eth_estimateGas", request), 16)
    assert gas == 21_000

    gas_price = int(rpc("eth_gasPrice"), 16)
    tip = int(rpc("eth_maxPriorityFeePerGas"), 16)
    history = rpc("eth_feeHistory", "0x5", "latest", [10, 50, 90])
    latest = rpc("eth_getBlockByNumber", "latest", False)
    assert gas_price > 0 and tip >= 0
    assert int(history["oldestBlock"], 16) == max(0, int(latest["number"], 16) - 4)
    assert len(history["baseFeePerGas"]) == len(history["gasUsedRatio"]) + 1
    assert len(history["reward"]) == len(history["gasUsedRatio"])
    assert all(len(rewards) == 3 for rewards in history["reward"])
    assert all(0 <= ratio <= 1 for ratio in history["gasUsedRatio"])
    next_base_fee = int(history["baseFeePerGas"][-1], 16)
    assert next_base_fee == int(latest["baseFeePerGas"], 16) == 0
    # MetaMask "market": tip from the node, max fee = 2 × next base fee + tip.
    max_fee = 2 * next_base_fee + tip

    nonce = int(rpc("eth_getTransactionCount", acct0.address, "pending"), 16)
    signed = acct0.sign_transaction(
        {
            "type": 2,
            "chainId": DEV_CHAIN_ID,
            "nonce": nonce,
            "to": recipient,
            "value": value,
            "gas": gas,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
            "data": b"",
        }
    )
    tx_hash = rpc("eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
    assert HexBytes(tx_hash) == HexBytes(signed.hash)

    deadline = time.monotonic() + RECEIPT_TIMEOUT
    receipt = None
    while receipt is None:
        receipt = rpc("eth_getTransactionReceipt", tx_hash)
        if receipt is None:
            assert time.monotonic() < deadline, f"no receipt for {tx_hash}"
            time.sleep(0.05)
    assert receipt["status"] == "0x1" and receipt["type"] == "0x2", receipt
    assert int(receipt["gasUsed"], 16) == 21_000
    effective_price = int(receipt["effectiveGasPrice"], 16)
    assert effective_price <= max_fee
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(HexBytes(b"\x12" * 32))  # unknown hash → null

    assert int(rpc("eth_getTransactionCount", acct0.address, "pending"), 16) == nonce + 1
    assert int(rpc("eth_getTransactionCount", acct0.address, "latest"), 16) == nonce + 1
    assert int(rpc("eth_getBalance", recipient, "latest"), 16) == value
    spent = balance - int(rpc("eth_getBalance", acct0.address, "latest"), 16)
    assert spent == value + 21_000 * effective_price

    tx = rpc("eth_getTransactionByHash", tx_hash)
    assert tx["type"] == "0x2" and tx["chainId"] == hex(DEV_CHAIN_ID)
    assert int(tx["maxFeePerGas"], 16) == max_fee
    assert int(tx["maxPriorityFeePerGas"], 16) == tip
    assert tx["accessList"] == [] and tx["yParity"] in ("0x0", "0x1")
    assert tx["blockHash"] == receipt["blockHash"] and tx["nonce"] == hex(nonce)
