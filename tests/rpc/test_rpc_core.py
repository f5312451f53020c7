"""End-to-end: web3.py against an automining node; results checked against the spec schemas."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from eth_account.signers.local import LocalAccount
from rpc_harness import CHAIN_ID, COINBASE, FUNDS, KEYS
from web3 import AsyncWeb3, Web3, WebSocketProvider

from cybermiles import __version__
from cybermiles.crypto.address import create_address
from cybermiles.crypto.keccak import keccak256

GWEI = 10**9
RECIPIENT = "0x" + "ab" * 20
TO = Web3.to_checksum_address(RECIPIENT)
TOPIC = keccak256(b"Ping()")
EMPTY_BLOOM = "0x" + "00" * 256

# Runtime: log0(42), log1(42, TOPIC), sstore(1, 7), stop.
RUNTIME = bytes.fromhex(
    "602a600052"  # mstore(0, 42)
    "60206000a0"  # log0(0, 32)
    "7f" + TOPIC.hex() + "60206000a1"  # log1(0, 32, TOPIC)
    "6007600155"  # sstore(1, 7)
    "00"
)
# Constructor: sstore(0, 5), then return RUNTIME.
INIT_PREFIX_LEN = 16
INIT_CODE = (
    bytes.fromhex("6005600055")  # sstore(0, 5)
    + bytes([0x60, len(RUNTIME), 0x80, 0x60, INIT_PREFIX_LEN, 0x60, 0x00, 0x39, 0x60, 0x00, 0xF3])
    + RUNTIME
)
assert INIT_CODE[INIT_PREFIX_LEN:] == RUNTIME


def addr_bytes(account: LocalAccount) -> bytes:
    return bytes.fromhex(account.address[2:])


def send(w3: Web3, account: LocalAccount, tx: dict[str, Any]) -> Any:
    """Sign ``tx`` (nonce and chain id filled in), send it and wait for its receipt."""
    tx = {"chainId": CHAIN_ID, "nonce": w3.eth.get_transaction_count(account.address), **tx}
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    assert bytes(tx_hash) == bytes(signed.hash)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)


def dynamic_fee(**extra: Any) -> dict[str, Any]:
    return {"type": 2, "maxFeePerGas": 2 * GWEI, "maxPriorityFeePerGas": GWEI, **extra}


def test_identity(w3: Web3, call: Callable[..., Any], check_schema: Callable[..., None]) -> None:
    assert w3.eth.chain_id == CHAIN_ID
    assert w3.net.version == str(CHAIN_ID)
    assert w3.net.listening is True
    assert w3.net.peer_count == 0
    assert w3.eth.syncing is False
    assert w3.eth.gas_price == GWEI
    assert w3.eth.max_priority_fee == GWEI
    assert w3.eth.accounts == [KEYS[0].address]
    assert w3.eth.block_number >= 0
    version = w3.client_version
    assert version.startswith(f"cybermiles/v{__version__}/python3.")
    assert call("web3_sha3", "0x68656c6c6f") == "0x" + keccak256(b"hello").hex()
    assert call("eth_chainId") == hex(CHAIN_ID)
    check_schema("eth_chainId", call("eth_chainId"))
    check_schema("eth_syncing", call("eth_syncing"))
    check_schema("eth_blockNumber", call("eth_blockNumber"))
    check_schema("eth_gasPrice", call("eth_gasPrice"))
    check_schema("net_version", call("net_version"))
    check_schema("eth_accounts", call("eth_accounts"))


def test_eip1559_transfer(
    w3: Web3, call: Callable[..., Any], check_schema: Callable[..., None]
) -> None:
    sender = KEYS[1]
    start_block = w3.eth.block_number
    before = w3.eth.get_balance(sender.address)
    receipt = send(w3, sender, dynamic_fee(to=TO, value=12345, gas=21_000))
    assert receipt.status == 1
    assert receipt.gasUsed == 21_000
    assert receipt.cumulativeGasUsed == 21_000
    assert receipt.effectiveGasPrice == GWEI
    assert receipt.contractAddress is None
    assert receipt.type == 2
    assert receipt.blockNumber > start_block
    assert w3.eth.get_balance(TO) >= 12345
    assert w3.eth.get_balance(sender.address) == before - 12345 - 21_000 * GWEI
    assert w3.eth.get_transaction_count(sender.address) == 1
    assert w3.eth.get_transaction_count(sender.address, "pending") == 1

    tx_hash = "0x" + bytes(receipt.transactionHash).hex()
    tx = call("eth_getTransactionByHash", tx_hash)
    check_schema("eth_getTransactionByHash", tx)
    assert tx["type"] == "0x2"
    assert tx["chainId"] == hex(CHAIN_ID)
    assert tx["nonce"] == "0x0"
    assert tx["from"] == sender.address.lower()
    assert tx["to"] == RECIPIENT
    assert tx["value"] == hex(12345)
    assert tx["gas"] == hex(21_000)
    assert tx["maxFeePerGas"] == hex(2 * GWEI)
    assert tx["maxPriorityFeePerGas"] == hex(GWEI)
    assert tx["gasPrice"] == hex(GWEI)  # the effective price once mined
    assert tx["accessList"] == []
    assert tx["yParity"] == tx["v"] and tx["v"] in ("0x0", "0x1")
    assert tx["input"] == "0x"
    assert tx["blockNumber"] == hex(receipt.blockNumber)
    assert tx["transactionIndex"] == "0x0"

    raw_receipt = call("eth_getTransactionReceipt", tx_hash)
    check_schema("eth_getTransactionReceipt", raw_receipt)
    assert raw_receipt["gasUsed"] == hex(21_000)
    assert raw_receipt["logsBloom"] == EMPTY_BLOOM
    assert raw_receipt["from"] == sender.address.lower()

    block = call("eth_getBlockByNumber", hex(receipt.blockNumber), False)
    check_schema("eth_getBlockByNumber", block)
    assert block["transactions"] == [tx_hash]
    assert block["miner"] == COINBASE
    assert block["baseFeePerGas"] == "0x0"
    assert block["gasUsed"] == hex(21_000)
    assert block["withdrawals"] == [] and block["uncles"] == []
    assert block["hash"] == tx["blockHash"] == raw_receipt["blockHash"]
    assert tx["blockTimestamp"] == block["timestamp"]
    full = call("eth_getBlockByNumber", hex(receipt.blockNumber), True)
    check_schema("eth_getBlockByNumber", full)
    assert full["transactions"] == [tx]
    assert full["size"] == block["size"]
    assert call("eth_getBlockByHash", block["hash"], True) == full

    w3_block = w3.eth.get_block(receipt.blockNumber, full_transactions=True)
    assert w3_block.transactions[0]["hash"] == receipt.transactionHash
    assert w3_block.baseFeePerGas == 0


def test_legacy_transfer(w3: Web3, call: Callable[..., Any], check_schema: Callable[..., None]):
    sender = KEYS[2]
    before = w3.eth.get_balance(sender.address)
    receipt = send(w3, sender, {"to": TO, "value": 7, "gas": 21_000, "gasPrice": 3 * GWEI})
    assert receipt.status == 1 and receipt.type == 0
    assert receipt.effectiveGasPrice == 3 * GWEI
    tx = call("eth_getTransactionByHash", "0x" + bytes(receipt.transactionHash).hex())
    check_schema("eth_getTransactionByHash", tx)
    assert tx["type"] == "0x0"
    assert tx["gasPrice"] == hex(3 * GWEI)
    assert int(tx["v"], 16) in (CHAIN_ID * 2 + 35, CHAIN_ID * 2 + 36)
    assert "yParity" not in tx and "accessList" not in tx and "maxFeePerGas" not in tx
    assert w3.eth.get_balance(sender.address) == before - 7 - 21_000 * 3 * GWEI


def test_free_transfer(w3: Web3, call: Callable[..., Any]) -> None:
    """A plain transfer priced below min_gas_price is free within the quota."""
    sender = KEYS[2]
    before = w3.eth.get_balance(sender.address)
    receipt = send(w3, sender, {"to": TO, "value": 1, "gas": 21_000, "gasPrice": 0})
    assert receipt.status == 1 and receipt.effectiveGasPrice == 0
    assert w3.eth.get_balance(sender.address) == before - 1


def test_contract_creation_logs_and_storage(
    w3: Web3, call: Callable[..., Any], check_schema: Callable[..., None]
) -> None:
    deployer = KEYS[3]
    nonce = w3.eth.get_transaction_count(deployer.address)
    receipt = send(w3, deployer, dynamic_fee(data=INIT_CODE, gas=200_000))
    assert receipt.status == 1
    expected = create_address(addr_bytes(deployer), nonce)
    assert receipt.contractAddress == Web3.to_checksum_address(expected)
    assert receipt.to is None
    assert 53_000 < receipt.gasUsed < 200_000
    contract = "0x" + expected.hex()
    assert call("eth_getCode", contract, "latest") == "0x" + RUNTIME.hex()
    assert w3.eth.get_code(receipt.contractAddress) == RUNTIME
    assert call("eth_getStorageAt", contract, "0x0", "latest") == "0x" + "00" * 31 + "05"
    assert call("eth_getStorageAt", contract, "0x" + "00" * 32) == "0x" + "00" * 31 + "05"
    check_schema("eth_getStorageAt", call("eth_getStorageAt", contract, "0x0"))
    creation = call("eth_getTransactionByHash", "0x" + bytes(receipt.transactionHash).hex())
    assert creation["to"] is None
    check_schema("eth_getTransactionByHash", creation)
    raw_creation = call("eth_getTransactionReceipt", creation["hash"])
    assert raw_creation["contractAddress"] == contract and raw_creation["to"] is None
    check_schema("eth_getTransactionReceipt", raw_creation)
    # Code did not exist before the creation block.
    before = hex(receipt.blockNumber - 1)
    assert call("eth_getCode", contract, before) == "0x"

    ping = send(w3, deployer, dynamic_fee(to=receipt.contractAddress, gas=100_000))
    assert ping.status == 1
    assert [log.logIndex for log in ping.logs] == [0, 1]
    assert ping.logs[1].topics == [TOPIC]
    assert int.from_bytes(ping.logs[0].data, "big") == 42
    assert call("eth_getStorageAt", contract, "0x1") == "0x" + "00" * 31 + "07"
    raw = call("eth_getTransactionReceipt", "0x" + bytes(ping.transactionHash).hex())
    check_schema("eth_getTransactionReceipt", raw)
    assert raw["logsBloom"] != EMPTY_BLOOM
    assert [log["removed"] for log in raw["logs"]] == [False, False]
    assert all(log["address"] == contract for log in raw["logs"])
    block = call("eth_getBlockByNumber", raw["blockNumber"], False)
    assert block["logsBloom"] == raw["logsBloom"]
    assert raw["logs"][0]["blockTimestamp"] == block["timestamp"]
    receipts = call("eth_getBlockReceipts", raw["blockNumber"])
    check_schema("eth_getBlockReceipts", receipts)
    assert receipts == [raw]
    assert call("eth_getBlockReceipts", {"blockHash": block["hash"]}) == [raw]


def test_state_at_older_blocks(
    w3: Web3, call: Callable[..., Any], check_schema: Callable[..., None]
) -> None:
    sender = KEYS[4]
    address = sender.address
    receipt = send(w3, sender, dynamic_fee(to=TO, value=1000, gas=21_000))
    mined = receipt.blockNumber
    parent = call("eth_getBlockByNumber", hex(mined - 1), False)
    assert call("eth_getBalance", address, hex(mined - 1)) == hex(FUNDS)
    assert call("eth_getBalance", address, "earliest") == hex(FUNDS)
    assert call("eth_getBalance", address, {"blockNumber": hex(mined - 1)}) == hex(FUNDS)
    assert call("eth_getBalance", address, {"blockHash": parent["hash"]}) == hex(FUNDS)
    assert call("eth_getBalance", address, parent["hash"]) == hex(FUNDS)
    assert call("eth_getTransactionCount", address, hex(mined - 1)) == "0x0"
    after = FUNDS - 1000 - 21_000 * GWEI
    assert call("eth_getBalance", address, hex(mined)) == hex(after)
    assert call("eth_getBalance", address) == hex(after)
    for tag in ("latest", "pending", "safe", "finalized"):
        assert call("eth_getBalance", address, tag) == hex(after)
    assert w3.eth.get_balance(address, block_identifier=mined - 1) == FUNDS
    check_schema("eth_getBalance", call("eth_getBalance", address, "latest"))
    check_schema("eth_getTransactionCount", call("eth_getTransactionCount", address))
    check_schema("eth_getCode", call("eth_getCode", address))


def test_pool_transactions_and_pending_nonce(
    w3: Web3, call: Callable[..., Any], check_schema: Callable[..., None]
) -> None:
    sender = KEYS[5]
    nonce = w3.eth.get_transaction_count(sender.address)
    gapped = sender.sign_transaction(
        {"chainId": CHAIN_ID, "nonce": nonce + 1, "to": TO, "value": 2, "gas": 21_000}
        | dynamic_fee()
    )
    gapped_hash = w3.eth.send_raw_transaction(gapped.raw_transaction)
    queued = call("eth_getTransactionByHash", "0x" + bytes(gapped_hash).hex())
    assert queued["blockHash"] is None and queued["blockNumber"] is None
    assert queued["transactionIndex"] is None
    assert queued["gasPrice"] == hex(2 * GWEI)  # max fee while pending
    assert queued["nonce"] == hex(nonce + 1)
    assert call("eth_getTransactionReceipt", queued["hash"]) is None
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce

    send(w3, sender, dynamic_fee(to=TO, value=1, gas=21_000))
    later = w3.eth.wait_for_transaction_receipt(gapped_hash, timeout=30, poll_latency=0.05)
    assert later.status == 1
    assert w3.eth.get_transaction_count(sender.address, "pending") == nonce + 2
    assert w3.eth.get_transaction_count(sender.address) == nonce + 2


def test_block_getters(w3: Web3, call: Callable[..., Any], check_schema: Callable[..., None]):
    send(w3, KEYS[6], dynamic_fee(to=TO, value=1, gas=21_000))  # the head holds one transaction
    genesis = call("eth_getBlockByNumber", "earliest", True)
    check_schema("eth_getBlockByNumber", genesis)
    assert genesis["number"] == "0x0"
    assert genesis["parentHash"] == "0x" + "00" * 32
    assert genesis["transactions"] == []
    assert call("eth_getBlockByNumber", "0x0", False) == genesis
    assert call("eth_getBlockTransactionCountByNumber", "0x0") == "0x0"
    assert call("eth_getBlockReceipts", "earliest") == []

    head = call("eth_blockNumber")
    latest = call("eth_getBlockByNumber", "latest", False)
    assert int(latest["number"], 16) >= int(head, 16) >= 1
    check_schema("eth_getBlockByHash", call("eth_getBlockByHash", latest["hash"], False))
    parent = call("eth_getBlockByNumber", hex(int(latest["number"], 16) - 1), False)
    assert latest["parentHash"] == parent["hash"]
    assert int(latest["timestamp"], 16) > int(parent["timestamp"], 16)

    count = call("eth_getBlockTransactionCountByNumber", latest["number"])
    assert count == hex(len(latest["transactions"])) == "0x1"
    assert call("eth_getBlockTransactionCountByHash", latest["hash"]) == count
    check_schema("eth_getBlockTransactionCountByHash", count)
    by_number = call("eth_getTransactionByBlockNumberAndIndex", latest["number"], "0x0")
    by_hash = call("eth_getTransactionByBlockHashAndIndex", latest["hash"], "0x0")
    assert by_number == by_hash
    assert by_number["hash"] == latest["transactions"][0]
    check_schema("eth_getTransactionByBlockHashAndIndex", by_hash)
    assert call("eth_getTransactionByBlockNumberAndIndex", latest["number"], "0x1") is None

    missing_number, missing_hash = "0xffffff", "0x" + "11" * 32
    assert call("eth_getBlockByNumber", missing_number, False) is None
    assert call("eth_getBlockByHash", missing_hash, True) is None
    assert call("eth_getBlockTransactionCountByNumber", missing_number) is None
    assert call("eth_getBlockTransactionCountByHash", missing_hash) is None
    assert call("eth_getTransactionByBlockHashAndIndex", missing_hash, "0x0") is None
    assert call("eth_getBlockReceipts", missing_number) is None
    assert call("eth_getTransactionByHash", missing_hash) is None
    assert call("eth_getTransactionReceipt", missing_hash) is None
    check_schema("eth_getBlockByNumber", None)


def test_web3_batch_requests(w3: Web3) -> None:
    with w3.batch_requests() as batch:
        batch.add(w3.eth.get_block(0))
        batch.add(w3.eth.get_balance(KEYS[0].address, 0))
        batch.add(w3.eth.get_transaction_count(KEYS[0].address))
        block, balance, nonce = batch.execute()
    assert block.number == 0
    assert balance == FUNDS
    assert nonce == 0


def test_web3_websocket_provider(server: Any) -> None:
    async def run() -> tuple[int, int, Any]:
        url = server.url.replace("http://", "ws://")
        async with AsyncWeb3(WebSocketProvider(url)) as aw3:
            return await aw3.eth.chain_id, await aw3.eth.block_number, await aw3.eth.get_block(0)

    chain_id, number, genesis = asyncio.run(run())
    assert chain_id == CHAIN_ID
    assert number >= 0
    assert genesis.number == 0
