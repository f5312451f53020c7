"""Logs, filters, txpool and fee history: web3.py against an automining node running TestToken.

Results are checked against the execution-apis schemas (an empty eth_getFilterChanges result
is not: its ``oneOf`` of hash and log arrays matches an empty array twice).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from rpc_harness import CHAIN_ID, KEYS, HttpReply
from web3 import Web3
from web3.contract import Contract

from cybermiles.chain.header import encode_header, make_header
from cybermiles.chain.receipts import Log, Receipt, logs_bloom
from cybermiles.crypto.keccak import keccak256
from cybermiles.rpc import filters as rpc_filters
from cybermiles.rpc.filters import (
    FilterManager,
    FilterNotFound,
    block_logs,
    header_bloom,
    parse_criteria,
)
from cybermiles.rpc.lookup import BlockInfo
from cybermiles.rpc.methods import fees
from cybermiles.rpc.methods import logs as logs_methods

GWEI = 10**9
SUPPLY = 10**24
ARTIFACT = Path(__file__).resolve().parents[2] / "contracts" / "build" / "TestToken.json"
TRANSFER = "0x" + keccak256(b"Transfer(address,address,uint256)").hex()
APPROVAL = "0x" + keccak256(b"Approval(address,address,uint256)").hex()
OWNER, ALICE, BOB = KEYS[0], KEYS[2], KEYS[3]


def padded(account: LocalAccount) -> str:
    """An address as an indexed event topic."""
    return "0x" + "00" * 12 + account.address[2:].lower()


def hexstr(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def fee_fields(**extra: Any) -> dict[str, Any]:
    return {"type": 2, "maxFeePerGas": 2 * GWEI, "maxPriorityFeePerGas": GWEI, **extra}


def send(w3: Web3, account: LocalAccount, tx: dict[str, Any], *, wait: bool = True) -> Any:
    """Sign and send ``tx`` (nonce, chain id and fees filled in); return the receipt or hash."""
    tx = {
        "chainId": CHAIN_ID,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        **fee_fields(),
        **tx,
    }
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    if not wait:
        return tx_hash
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)
    assert receipt.status == 1
    return receipt


def rpc_error(post: Callable[..., HttpReply], method: str, *params: Any) -> dict[str, Any]:
    reply = post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    assert reply.status == 200
    doc = reply.json()
    assert "error" in doc, doc
    return doc["error"]


def eventually(probe: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``probe`` until it returns something truthy (events are delivered after commit)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def collect(poll: Callable[[], list[Any]], count: int, timeout: float = 10.0) -> list[Any]:
    """Accumulate ``poll()`` results until ``count`` items arrived (or the timeout)."""
    items: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(items) < count and time.monotonic() < deadline:
        items += poll()
        time.sleep(0.02)
    return items


@dataclass
class Token:
    contract: Contract
    deploy: Any  # the receipts of the setup transactions
    to_alice: Any
    to_bob: Any
    approve: Any

    @property
    def address(self) -> str:
        return self.contract.address


def transact(w3: Web3, account: LocalAccount, call: Any, **fields: Any) -> Any:
    tx = call.build_transaction(
        {
            "chainId": CHAIN_ID,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "gas": 200_000,
            **fee_fields(),
            **fields,
        }
    )
    return send(w3, account, tx)


@pytest.fixture(scope="module")
def token(w3: Web3) -> Token:
    artifact = json.loads(ARTIFACT.read_text())
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    deploy = transact(w3, OWNER, factory.constructor(SUPPLY), gas=1_500_000)
    contract = w3.eth.contract(address=deploy.contractAddress, abi=artifact["abi"])
    to_alice = transact(w3, OWNER, contract.functions.transfer(ALICE.address, 1000))
    to_bob = transact(w3, OWNER, contract.functions.transfer(BOB.address, 2000))
    approve = transact(w3, ALICE, contract.functions.approve(BOB.address, 7))
    return Token(contract, deploy, to_alice, to_bob, approve)


# --- eth_getLogs ------------------------------------------------------------------------------


def test_get_logs_by_address_topics_range_and_hash(
    w3: Web3, token: Token, call: Callable[..., Any], check_schema: Callable[..., None]
) -> None:
    everything = call("eth_getLogs", {"fromBlock": "earliest", "address": token.address})
    check_schema("eth_getLogs", everything)
    assert [entry["topics"][0] for entry in everything] == [TRANSFER] * 3 + [APPROVAL]
    for entry, receipt in zip(
        everything, [token.deploy, token.to_alice, token.to_bob, token.approve], strict=True
    ):
        assert entry["removed"] is False
        assert entry["address"] == token.address.lower()
        assert entry["transactionHash"] == hexstr(receipt.transactionHash)
        assert entry["blockHash"] == hexstr(receipt.blockHash)
        assert entry["blockNumber"] == hex(receipt.blockNumber)
        assert entry["logIndex"] == "0x0" and entry["transactionIndex"] == "0x0"
        block = call("eth_getBlockByNumber", entry["blockNumber"], False)
        assert entry["blockTimestamp"] == block["timestamp"]
        # the same objects as the receipt's logs
        assert [entry] == call("eth_getTransactionReceipt", entry["transactionHash"])["logs"]

    # web3: address + event topic, decoded with the contract ABI
    logs = w3.eth.get_logs({"fromBlock": 0, "address": token.address, "topics": [TRANSFER]})
    events = [token.contract.events.Transfer().process_log(entry) for entry in logs]
    assert [(e.args["from"], e.args.to, e.args.value) for e in events] == [
        ("0x" + "00" * 20, OWNER.address, SUPPLY),
        (OWNER.address, ALICE.address, 1000),
        (OWNER.address, BOB.address, 2000),
    ]
    approval = token.contract.events.Approval().process_log(
        w3.eth.get_logs({"fromBlock": 0, "topics": [APPROVAL]})[0]
    )
    assert (approval.args.owner, approval.args.spender, approval.args.value) == (
        ALICE.address,
        BOB.address,
        7,
    )

    # positional topics: null wildcard, OR-lists, a null inside a list, trailing positions
    def topics(*query: Any, **extra: Any) -> list[str]:
        found = call("eth_getLogs", {"fromBlock": "0x0", "topics": list(query), **extra})
        return [entry["transactionHash"] for entry in found]

    deploy, alice, bob, approve = (
        hexstr(r.transactionHash)
        for r in (token.deploy, token.to_alice, token.to_bob, token.approve)
    )
    assert topics(None, None, padded(BOB)) == [bob, approve]  # Approval(alice, bob) too
    assert topics(TRANSFER, None, padded(BOB)) == [bob]
    assert topics(TRANSFER, padded(OWNER)) == [alice, bob]
    assert topics([TRANSFER, APPROVAL], None, [padded(ALICE), padded(BOB)]) == [
        alice,
        bob,
        approve,
    ]
    assert topics([APPROVAL, None]) == [deploy, alice, bob, approve]
    assert topics(None, None, None, None) == []  # these logs have 3 topics only
    assert topics(TRANSFER, address=[token.address, KEYS[7].address]) == [deploy, alice, bob]
    assert topics(TRANSFER, address=KEYS[7].address) == []

    # block range and block hash
    number = hex(token.to_bob.blockNumber)
    assert topics(fromBlock=number, toBlock=number) == [bob]
    by_hash = call("eth_getLogs", {"blockHash": hexstr(token.to_alice.blockHash)})
    check_schema("eth_getLogs", by_hash)
    assert [entry["transactionHash"] for entry in by_hash] == [alice]
    w3_by_hash = w3.eth.get_logs({"blockHash": token.approve.blockHash})
    assert w3_by_hash[0]["transactionHash"] == token.approve.transactionHash
    assert call("eth_getLogs", {}) == call("eth_getLogs", {"fromBlock": "latest"})


def test_get_logs_errors(
    post: Callable[..., HttpReply], token: Token, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = token.approve.blockNumber
    cases = [
        ({"fromBlock": "0x2", "toBlock": "0x1"}, -32602, "invalid block range params"),
        ({"fromBlock": hex(head + 50)}, -32602, "invalid block range params"),
        (
            {"fromBlock": "0x0", "toBlock": hex(head + 50)},
            -32602,
            "block range extends beyond current head block",
        ),
        (
            {"blockHash": hexstr(token.deploy.blockHash), "fromBlock": "0x1"},
            -32602,
            "invalid argument 0 (filter): cannot specify both BlockHash and FromBlock/ToBlock, "
            "choose one or the other",
        ),
        ({"blockHash": "0x" + "ab" * 32}, -32000, "unknown block"),
        ({"toBlock": "pending"}, -32000, "pending logs are not supported"),
        ({"topics": [None] * 5}, -32602, "invalid argument 0 (filter.topics): exceed max topics"),
        ({"topics": [7]}, -32602, "invalid argument 0 (filter.topics): invalid topic(s)"),
        (
            {"topics": ["0x12"]},
            -32602,
            "invalid argument 0 (filter.topics): hex string has length 2, want 64 for a topic",
        ),
        (
            {"address": "0x12"},
            -32602,
            "invalid argument 0 (filter.address): hex string has length 2, want 40 for an address",
        ),
        (
            {"address": [5]},
            -32602,
            "invalid argument 0 (filter.address): non-string address at index 0",
        ),
        ({"fromBlock": "next"}, -32602, "invalid argument 0 (filter.fromBlock): expected a block"),
        ("latest", -32602, "invalid argument 0 (filter): expected a filter object"),
    ]
    for query, code, message in cases:
        error = rpc_error(post, "eth_getLogs", query)
        assert (error["code"], error["message"][: len(message)]) == (code, message), query

    monkeypatch.setattr(logs_methods, "MAX_BLOCK_RANGE", 3)
    monkeypatch.setattr(logs_methods, "MAX_RESULTS", 2)
    error = rpc_error(post, "eth_getLogs", {"fromBlock": "0x1", "toBlock": "0x4"})
    assert error == {"code": -32005, "message": "exceed maximum block range: 3"}
    error = rpc_error(post, "eth_getLogs", {"fromBlock": hex(head - 2), "toBlock": hex(head)})
    assert error == {"code": -32005, "message": "query returned more than 2 results"}


def test_block_logs_index_across_transactions() -> None:
    """logIndex counts across the block; transactionIndex/Hash name the emitting transaction."""
    a, b = b"\xaa" * 20, b"\xbb" * 20
    t1, t2 = b"\x01" * 32, b"\x02" * 32
    logs1 = (Log(a, (t1,), b"x"), Log(b, (t1, t2), b""))
    logs2 = (Log(a, (t2,), b"y"),)
    receipts = [
        Receipt(2, 1, 50_000, logs1, logs_bloom(logs1)),
        Receipt(2, 1, 71_000, (), logs_bloom(())),
        Receipt(2, 1, 99_000, logs2, logs_bloom(logs2)),
    ]
    bloom = int.from_bytes(logs_bloom(logs1 + logs2), "big")
    info = BlockInfo(
        5, make_header(block_number=5, bloom=bloom, timestamp=77, gas_limit=10**7), b"\xcc" * 32
    )
    hashes = [bytes([i]) * 32 for i in range(3)]
    assert header_bloom(encode_header(info.header)) == bloom

    def run(query: Any) -> list[tuple[str, str, str]]:
        found = block_logs(info, receipts, hashes.__getitem__, parse_criteria(query, "q"))
        return [(e["logIndex"], e["transactionIndex"], e["transactionHash"][:4]) for e in found]

    assert run({}) == [("0x0", "0x0", "0x00"), ("0x1", "0x0", "0x00"), ("0x2", "0x2", "0x02")]
    assert run({"address": "0x" + a.hex()}) == [("0x0", "0x0", "0x00"), ("0x2", "0x2", "0x02")]
    assert run({"topics": [None, "0x" + t2.hex()]}) == [("0x1", "0x0", "0x00")]
    assert run({"topics": [["0x" + t2.hex()]]}) == [("0x2", "0x2", "0x02")]
    assert run({"address": "0x" + "dd" * 20}) == []  # the bloom rules the block out
    criteria = parse_criteria({"address": "0x" + "dd" * 20}, "q")
    assert not criteria.bloom_may_match(bloom)
    assert parse_criteria({"topics": [["0x" + t1.hex()]]}, "q").bloom_may_match(bloom)


# --- filters ----------------------------------------------------------------------------------


def test_log_filter(
    w3: Web3,
    token: Token,
    call: Callable[..., Any],
    post: Callable[..., HttpReply],
    check_schema: Callable[..., None],
) -> None:
    new_filter = w3.eth.filter({"address": token.address, "topics": [TRANSFER]})
    filter_id = new_filter.filter_id
    check_schema("eth_newFilter", filter_id)
    since_start = call("eth_newFilter", {"fromBlock": "0x0", "address": token.address})
    assert w3.eth.get_filter_changes(filter_id) == []

    receipt = transact(w3, ALICE, token.contract.functions.transfer(BOB.address, 5))
    transact(w3, ALICE, token.contract.functions.approve(OWNER.address, 1))  # no Transfer
    changes = eventually(lambda: w3.eth.get_filter_changes(filter_id))
    assert len(changes) == 1
    assert changes[0]["transactionHash"] == receipt.transactionHash
    event = token.contract.events.Transfer().process_log(changes[0])
    assert (event.args["from"], event.args.to, event.args.value) == (ALICE.address, BOB.address, 5)
    assert w3.eth.get_filter_changes(filter_id) == []  # cleared by the poll

    raw_changes = collect(lambda: call("eth_getFilterChanges", since_start), 2)
    check_schema("eth_getFilterChanges", raw_changes)
    assert [entry["topics"][0] for entry in raw_changes] == [TRANSFER, APPROVAL]
    # eth_getFilterLogs reruns the query: from block 0 here, the latest block by default
    all_logs = call("eth_getFilterLogs", since_start)
    check_schema("eth_getFilterLogs", all_logs)
    assert len(all_logs) == 6
    assert w3.eth.get_filter_logs(filter_id) == []  # the latest block has an Approval only

    assert w3.eth.uninstall_filter(filter_id) is True
    assert w3.eth.uninstall_filter(filter_id) is False
    assert rpc_error(post, "eth_getFilterChanges", filter_id) == {
        "code": -32000,
        "message": "filter not found",
    }
    assert call("eth_uninstallFilter", since_start) is True

    error = rpc_error(post, "eth_newFilter", {"fromBlock": "0x5", "toBlock": "0x4"})
    assert error == {"code": -32602, "message": "invalid block range params"}
    error = rpc_error(post, "eth_newFilter", {"fromBlock": "pending"})
    assert error == {"code": -32000, "message": "pending logs are not supported"}


def test_block_and_pending_transaction_filters(
    w3: Web3, call: Callable[..., Any], check_schema: Callable[..., None]
) -> None:
    blocks = w3.eth.filter("latest")
    pending = w3.eth.filter("pending")
    full = call("eth_newPendingTransactionFilter", True)
    check_schema("eth_newBlockFilter", blocks.filter_id)
    check_schema("eth_newPendingTransactionFilter", full)

    receipt = send(w3, KEYS[4], {"to": BOB.address, "value": 1, "gas": 21_000})
    hashes = eventually(lambda: w3.eth.get_filter_changes(blocks.filter_id))
    assert hashes == [receipt.blockHash]
    raw_hashes = call("eth_getFilterChanges", pending.filter_id)
    check_schema("eth_getFilterChanges", raw_hashes)
    assert raw_hashes == [hexstr(receipt.transactionHash)]
    objects = call("eth_getFilterChanges", full)
    assert [tx["hash"] for tx in objects] == [hexstr(receipt.transactionHash)]
    assert objects[0]["blockHash"] is None and objects[0]["from"] == KEYS[4].address.lower()
    assert call("eth_getFilterChanges", full) == []
    for filter_id in (blocks.filter_id, pending.filter_id, full):
        assert call("eth_uninstallFilter", filter_id) is True


def test_unknown_filter_ids(post: Callable[..., HttpReply], call: Callable[..., Any]) -> None:
    not_found = {"code": -32000, "message": "filter not found"}
    assert rpc_error(post, "eth_getFilterChanges", "0x1234") == not_found
    assert rpc_error(post, "eth_getFilterLogs", "0x1234") == not_found
    block_filter = call("eth_newBlockFilter")
    assert rpc_error(post, "eth_getFilterLogs", block_filter) == not_found  # not a log filter
    assert call("eth_uninstallFilter", "0x1234") is False
    error = rpc_error(post, "eth_getFilterChanges", 7)
    assert error["code"] == -32602 and error["message"].startswith("invalid argument 0 (filter_id)")
    assert call("eth_uninstallFilter", block_filter) is True


def test_filter_expiry_and_limits() -> None:
    now = [1000.0]
    manager = FilterManager(timeout=300.0, clock=lambda: now[0], max_items=3)
    blocks = manager.new_block_filter()
    pending = manager.new_pending_filter()
    logs_id = manager.new_log_filter(parse_criteria({"fromBlock": "0x0"}, "q"))
    assert len(blocks) <= 34 and blocks.startswith("0x") and blocks != pending
    assert len(manager) == 3

    now[0] += 299.0
    assert manager.changes(blocks) == []  # polled in time: the deadline moves on
    assert manager.log_criteria(logs_id).from_block is not None  # does not renew
    now[0] += 299.0
    assert manager.changes(blocks) == []
    with pytest.raises(FilterNotFound):
        manager.changes(pending)
    with pytest.raises(FilterNotFound):
        manager.log_criteria(logs_id)
    assert manager.uninstall(pending) is False
    now[0] += 300.0
    with pytest.raises(FilterNotFound):
        manager.changes(blocks)
    assert len(manager) == 0

    pending = manager.new_pending_filter()
    txs = [SimpleNamespace(hash=bytes([i]) * 32) for i in range(3)]
    manager.on_pending(txs)
    assert manager.changes(pending) == [hexstr(tx.hash) for tx in txs]
    manager.on_pending([*txs, txs[0]])  # a fourth unpolled entry: the filter is dropped
    with pytest.raises(FilterNotFound):
        manager.changes(pending)


def test_criteria_parsing() -> None:
    topic = "0x" + "11" * 32
    criteria = parse_criteria(
        {"address": None, "topics": [None, [topic, None], [topic]], "extra": 1}, "q"
    )
    assert criteria.addresses == () and criteria.topics == ((), (), (bytes.fromhex("11" * 32),))
    assert parse_criteria(None, "q") == parse_criteria({}, "q")
    assert rpc_filters.new_id() != rpc_filters.new_id()


# --- txpool -----------------------------------------------------------------------------------


def test_txpool_with_a_queued_transaction(
    w3: Web3, call: Callable[..., Any], check_schema: Callable[..., None]
) -> None:
    sender = KEYS[6]
    nonce = w3.eth.get_transaction_count(sender.address)
    gapped = {"to": BOB.address, "value": 3, "gas": 21_000, "nonce": nonce + 1}
    gapped_hash = send(w3, sender, gapped, wait=False)

    status = call("txpool_status")
    check_schema("txpool_status", status)
    assert status == {"pending": "0x0", "queued": "0x1"}
    content = call("txpool_content")
    check_schema("txpool_content", content)
    assert content["pending"] == {}
    assert list(content["queued"]) == [sender.address]  # checksummed, as geth
    queued = content["queued"][sender.address]
    assert list(queued) == [str(nonce + 1)]
    tx = queued[str(nonce + 1)]
    assert tx["hash"] == hexstr(gapped_hash) and tx["nonce"] == hex(nonce + 1)
    assert tx["blockHash"] is None and tx["blockNumber"] is None
    assert tx["transactionIndex"] is None and tx["gasPrice"] == hex(2 * GWEI)
    assert call("txpool_contentFrom", sender.address.lower()) == {
        "pending": {},
        "queued": queued,
    }
    assert call("txpool_contentFrom", BOB.address) == {"pending": {}, "queued": {}}
    assert call("txpool_inspect") == {
        "pending": {},
        "queued": {
            sender.address: {str(nonce + 1): f"{BOB.address}: 3 wei + 21000 gas × {2 * GWEI} wei"}
        },
    }

    send(w3, sender, {"to": BOB.address, "value": 3, "gas": 21_000, "nonce": nonce})
    w3.eth.wait_for_transaction_receipt(gapped_hash, timeout=30, poll_latency=0.05)
    assert eventually(lambda: call("txpool_status") == {"pending": "0x0", "queued": "0x0"})
    assert call("txpool_content") == {"pending": {}, "queued": {}}


# --- eth_feeHistory ---------------------------------------------------------------------------


def test_fee_history(
    w3: Web3,
    token: Token,
    call: Callable[..., Any],
    post: Callable[..., HttpReply],
    check_schema: Callable[..., None],
) -> None:
    head = w3.eth.block_number
    history = call("eth_feeHistory", "0x3", "latest", [25, 75])
    check_schema("eth_feeHistory", history)
    assert history["oldestBlock"] == hex(head - 2)
    assert history["baseFeePerGas"] == ["0x0"] * 4
    assert history["baseFeePerBlobGas"] == ["0x1"] * 4
    assert history["blobGasUsedRatio"] == [0, 0, 0]
    assert history["reward"] == [[hex(GWEI)] * 2] * 3  # one 1-gwei-tip transaction per block
    gas_limit = w3.eth.get_block(head).gasLimit
    assert history["gasUsedRatio"][-1] == w3.eth.get_block(head).gasUsed / gas_limit

    genesis = call("eth_feeHistory", "0x5", "0x0", [50])  # cut to the blocks that exist
    check_schema("eth_feeHistory", genesis)
    assert genesis["oldestBlock"] == "0x0" and genesis["reward"] == [["0x0"]]
    assert genesis["gasUsedRatio"] == [0]
    no_rewards = call("eth_feeHistory", 2, "latest", [])
    assert "reward" not in no_rewards and len(no_rewards["baseFeePerGas"]) == 3
    assert call("eth_feeHistory", "0x0", "latest", []) == {
        "oldestBlock": "0x0",
        "gasUsedRatio": None,
    }
    assert call("eth_feeHistory", "10", hex(head), None)["oldestBlock"] == hex(max(head - 9, 0))

    w3_history = w3.eth.fee_history(2, "latest", [10.5, 90])
    assert w3_history["oldestBlock"] == head - 1 and w3_history["reward"] == [[GWEI, GWEI]] * 2

    error = rpc_error(post, "eth_feeHistory", "0x1", "latest", [50, 10])
    assert error == {
        "code": -32000,
        "message": "invalid reward percentile: #0:50.000000 >= #1:10.000000",
    }
    error = rpc_error(post, "eth_feeHistory", "0x1", "latest", [101])
    assert error == {"code": -32000, "message": "invalid reward percentile: 101.000000"}
    error = rpc_error(post, "eth_feeHistory", "0x1", hex(head + 100), [])
    assert error["code"] == -32000
    assert error["message"].startswith("request beyond head block: requested")
    assert rpc_error(post, "eth_feeHistory", "0x1", "latest", "x")["code"] == -32602
    assert rpc_error(post, "eth_feeHistory", "-1", "latest", [])["code"] == -32602


def test_reward_percentiles_weighted_by_gas() -> None:
    """geth's rule: sort by tip, walk the cumulative gas up to gasUsed * pct / 100."""

    def tx(tip: int) -> Any:
        return SimpleNamespace(max_fee_per_gas=10**12, max_priority_fee_per_gas=tip)

    txs = [tx(30), tx(10), tx(20)]
    receipts = [SimpleNamespace(cumulative_gas_used=c) for c in (50_000, 71_000, 100_000)]
    # sorted by tip: 10 (21k gas), 20 (29k), 30 (50k); thresholds at 0, 21k, 25k, 50k, 100k
    pcts = [0.0, 21.0, 25.0, 50.0, 100.0]
    assert fees.rewards(100_000, txs, receipts, 0, pcts) == [10, 10, 20, 20, 30]
    assert fees.rewards(0, [], [], 0, pcts) == [0] * 5
    assert fees.rewards(100_000, txs, receipts, 5, [100.0]) == [30]  # tips above the base fee
    assert fees.blob_base_fee(0) == 1
