"""Result formatting: block size against py-evm's block encoding, every tx type against the spec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import rlp
from eth.vm.forks.prague.blocks import PragueBlock
from eth_account import Account
from rpc_harness import CHAIN_ID

from cybermiles.chain.header import EMPTY_OMMERS_HASH, ZERO_HASH, header_hash, make_header
from cybermiles.chain.receipts import EMPTY_BLOOM, Log, Receipt
from cybermiles.chain.transactions import decode_transaction
from cybermiles.crypto.address import create_address
from cybermiles.rpc import format as fmt

KEY = Account.from_key(b"\x05" * 32)
TO = "0x" + "22" * 20
CHECKSUM_TO = Account.from_key(b"\x06" * 32).address


def signed(tx: dict[str, Any]) -> bytes:
    base = {"chainId": CHAIN_ID, "nonce": 3, "gas": 100_000, "value": 10, "to": CHECKSUM_TO}
    return bytes(KEY.sign_transaction(base | tx).raw_transaction)


def all_types() -> dict[str, bytes]:
    auth = KEY.sign_authorization({"chainId": CHAIN_ID, "address": CHECKSUM_TO, "nonce": 4})
    access = [{"address": CHECKSUM_TO, "storageKeys": ["0x" + "00" * 31 + "01"]}]
    return {
        "legacy": signed({"gasPrice": 5}),
        "legacy-create": signed({"gasPrice": 5, "to": b"", "data": b"\x60\x00" * 40}),
        "2930": signed({"type": 1, "gasPrice": 5, "accessList": access}),
        "1559": signed({"type": 2, "maxFeePerGas": 9, "maxPriorityFeePerGas": 2, "data": b"\1"}),
        "7702": signed(
            {
                "type": 4,
                "maxFeePerGas": 9,
                "maxPriorityFeePerGas": 2,
                "authorizationList": [auth],
                "accessList": access,
            }
        ),
    }


def header(**fields: Any) -> Any:
    base = {
        "block_number": 7,
        "gas_limit": 30_000_000,
        "timestamp": 1_700_000_123,
        "parent_hash": b"\x01" * 32,
        "uncles_hash": EMPTY_OMMERS_HASH,
        "coinbase": b"\xc0" * 20,
        "state_root": b"\x02" * 32,
        "extra_data": b"cybermiles",
        "gas_used": 123_456,
    }
    return make_header(**(base | fields))


@pytest.mark.parametrize("count", [0, 1, 5, 40])
def test_block_size_matches_py_evm_encoding(count: int) -> None:
    raws = list(all_types().values()) * 8
    raws = raws[:count]
    hdr = header()
    txs = [PragueBlock.transaction_builder.decode(raw) for raw in raws]
    block = PragueBlock(hdr, transactions=txs, uncles=[], withdrawals=[])
    assert fmt.block_size(hdr, raws) == len(rlp.encode(block))


@pytest.mark.parametrize("name", list(all_types()))
def test_transactions_match_the_spec(name: str, check_component: Callable[..., None]) -> None:
    tx = decode_transaction(all_types()[name], CHAIN_ID)
    ctx = fmt.TxContext(b"\x03" * 32, 7, 1_700_000_123, 2)
    mined = fmt.transaction(tx, ctx)
    check_component("TransactionInfo", mined)
    assert mined["hash"] == "0x" + tx.hash.hex()
    assert mined["from"] == KEY.address.lower()
    assert mined["transactionIndex"] == "0x2"
    assert mined["blockNumber"] == "0x7"
    assert mined["blockTimestamp"] == hex(1_700_000_123)
    pending = fmt.transaction(tx, None)
    assert pending["blockHash"] is None and pending["transactionIndex"] is None
    check_component("TransactionSigned", pending)
    if tx.type == 0:
        assert "yParity" not in mined and "accessList" not in mined
        assert mined["gasPrice"] == "0x5"
    else:
        assert mined["yParity"] == mined["v"]
    if tx.type in (2, 4):
        assert mined["gasPrice"] == "0x2"  # effective: min(9, 0 + 2)
        assert pending["gasPrice"] == "0x9"  # max fee while pending
    if tx.type in (1, 4):
        assert mined["accessList"] == [
            {"address": CHECKSUM_TO.lower(), "storageKeys": ["0x" + "00" * 31 + "01"]}
        ]
    if tx.type == 4:
        (auth,) = mined["authorizationList"]
        assert auth["address"] == CHECKSUM_TO.lower() and auth["nonce"] == "0x4"
        assert auth["chainId"] == hex(CHAIN_ID)


def test_receipt_fields(check_component: Callable[..., None]) -> None:
    create = decode_transaction(all_types()["legacy-create"], CHAIN_ID)
    call = decode_transaction(all_types()["1559"], CHAIN_ID)
    logs = (Log(b"\x09" * 20, (b"\x0a" * 32,), b"\x01\x02"), Log(b"\x09" * 20, (), b""))
    ctx = fmt.TxContext(b"\x03" * 32, 7, 1_700_000_123, 1)
    created = fmt.receipt(
        create,
        Receipt(0, 0, 90_000, (), EMPTY_BLOOM),
        ctx,
        previous_cumulative_gas=30_000,
        first_log_index=0,
    )
    check_component("ReceiptInfo", created)
    assert created["gasUsed"] == hex(60_000)
    assert created["cumulativeGasUsed"] == hex(90_000)
    assert created["status"] == "0x0"
    assert created["contractAddress"] == "0x" + create_address(create.sender, 3).hex()
    assert created["to"] is None
    assert created["effectiveGasPrice"] == "0x5"

    called = fmt.receipt(
        call,
        Receipt(2, 1, 120_000, logs, b"\x01" * 256),
        ctx,
        previous_cumulative_gas=90_000,
        first_log_index=4,
    )
    check_component("ReceiptInfo", called)
    assert called["contractAddress"] is None
    assert [log["logIndex"] for log in called["logs"]] == ["0x4", "0x5"]
    assert called["logs"][0]["topics"] == ["0x" + "0a" * 32]
    assert called["logs"][0]["data"] == "0x0102"
    assert called["effectiveGasPrice"] == "0x2"


def test_block_fields(check_component: Callable[..., None]) -> None:
    hdr = header(bloom=1 << 100)
    out = fmt.block(hdr, header_hash(hdr), 1234, ["0x" + "aa" * 32])
    check_component("Block", out)
    assert out["parentHash"] == "0x" + "01" * 32
    assert out["logsBloom"] == "0x" + (1 << 100).to_bytes(256, "big").hex()
    assert out["nonce"] == "0x" + "00" * 8
    assert out["baseFeePerGas"] == "0x0"
    assert out["difficulty"] == "0x0"
    assert out["size"] == hex(1234)
    assert out["extraData"] == "0x" + b"cybermiles".hex()
    assert out["mixHash"] == "0x" + ZERO_HASH.hex()
    for key in ("withdrawalsRoot", "parentBeaconBlockRoot", "requestsHash"):
        assert len(out[key]) == 66
    assert out["blobGasUsed"] == out["excessBlobGas"] == "0x0"


def test_schema_validation_is_live(check_component: Callable[..., None]) -> None:
    """The validator really resolves $refs: a malformed block fails."""
    hdr = header()
    good = fmt.block(hdr, header_hash(hdr), 10, [])
    with pytest.raises(AssertionError):
        check_component("Block", good | {"number": "0x07"})
    with pytest.raises(AssertionError):
        check_component("Block", {k: v for k, v in good.items() if k != "stateRoot"})
    with pytest.raises(AssertionError):
        check_component("Block", good | {"transactions": [{"hash": "0x"}]})


def test_quantities_and_data() -> None:
    assert fmt.quantity(0) == "0x0"
    assert fmt.quantity(255) == "0xff"
    assert fmt.data(b"") == "0x"
    assert fmt.data(b"\x00\x01") == "0x0001"
    assert fmt.address(None) is None
    assert fmt.word(7) == "0x" + "00" * 31 + "07"
