"""Result formatting: Python values -> the JSON shapes of the Ethereum execution-apis spec.

* quantity: ``0x`` + lowercase hex without leading zeros (``0x0``); data: ``0x`` + hex bytes;
  addresses lowercase (as geth), ``None`` -> null.
* transaction: type, chainId, nonce, gas, to, value, input, v, r, s, hash, from and the block
  context (blockHash, blockNumber, blockTimestamp, transactionIndex; null while pending).
  Legacy: gasPrice. Typed: accessList and yParity (``v`` repeats yParity). EIP-2930: gasPrice.
  EIP-1559 / 7702: maxFeePerGas, maxPriorityFeePerGas and gasPrice = the effective gas price in
  a block, maxFeePerGas while pending. EIP-7702: authorizationList.
* receipt: gasUsed is this receipt's cumulative gas minus the previous one's; contractAddress
  is CREATE(sender, nonce) for creations (even failed ones, as geth), else null; logIndex
  counts across the block; effectiveGasPrice from ``execution.fees``. No fields beyond the spec
  (its schema forbids them).
* block: every Prague header field, ``uncles`` and ``withdrawals`` empty, ``size`` the length
  of ``rlp([header, transactions, [], []])`` (typed transactions as byte strings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rlp
from rlp.codec import length_prefix

from cybermiles.chain.header import Header
from cybermiles.chain.receipts import Log, Receipt
from cybermiles.chain.transactions import (
    ACCESS_LIST_TX_TYPE,
    LEGACY_TX_TYPE,
    SET_CODE_TX_TYPE,
    Transaction,
)
from cybermiles.crypto.address import create_address
from cybermiles.execution.fees import effective_gas_price

Json = dict[str, Any]


def quantity(value: int) -> str:
    return hex(value)


def data(value: bytes) -> str:
    return "0x" + value.hex()


def address(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


def word(value: int) -> str:
    """A 256-bit value as 32 bytes of data (storage values, access-list keys)."""
    return "0x" + value.to_bytes(32, "big").hex()


@dataclass(frozen=True, slots=True)
class TxContext:
    """Where a transaction sits in the chain."""

    block_hash: bytes
    block_number: int
    block_timestamp: int
    index: int
    base_fee: int = 0


# --- transactions ---------------------------------------------------------------------------


def transaction(tx: Transaction, ctx: TxContext | None) -> Json:
    out: Json = {
        "blockHash": None if ctx is None else data(ctx.block_hash),
        "blockNumber": None if ctx is None else quantity(ctx.block_number),
        "blockTimestamp": None if ctx is None else quantity(ctx.block_timestamp),
        "transactionIndex": None if ctx is None else quantity(ctx.index),
        "hash": data(tx.hash),
        "from": address(tx.sender),
        "type": quantity(tx.type),
        "chainId": quantity(tx.chain_id),
        "nonce": quantity(tx.nonce),
        "gas": quantity(tx.gas),
        "to": address(tx.to),
        "value": quantity(tx.value),
        "input": data(tx.data),
    }
    if tx.type in (LEGACY_TX_TYPE, ACCESS_LIST_TX_TYPE):
        out["gasPrice"] = quantity(tx.gas_price)
    else:
        out["maxFeePerGas"] = quantity(tx.max_fee_per_gas)
        out["maxPriorityFeePerGas"] = quantity(tx.max_priority_fee_per_gas)
        price = tx.max_fee_per_gas if ctx is None else effective_gas_price(tx, ctx.base_fee)
        out["gasPrice"] = quantity(price)
    if tx.type != LEGACY_TX_TYPE:
        out["accessList"] = access_list(tx)
    if tx.type == SET_CODE_TX_TYPE:
        out["authorizationList"] = [
            {
                "chainId": quantity(auth.chain_id),
                "address": address(auth.address),
                "nonce": quantity(auth.nonce),
                "yParity": quantity(auth.y_parity),
                "r": quantity(auth.r),
                "s": quantity(auth.s),
            }
            for auth in tx.authorization_list
        ]
    out["v"] = quantity(tx.v)
    if tx.type != LEGACY_TX_TYPE:
        out["yParity"] = quantity(tx.v)
    out["r"] = quantity(tx.r)
    out["s"] = quantity(tx.s)
    return out


def access_list(tx: Transaction) -> list[Json]:
    return [
        {"address": address(addr), "storageKeys": [word(key) for key in keys]}
        for addr, keys in tx.access_list
    ]


# --- receipts and logs ----------------------------------------------------------------------


def log_entry(log: Log, log_index: int, tx_hash: bytes, ctx: TxContext) -> Json:
    return {
        "address": address(log.address),
        "topics": [data(topic) for topic in log.topics],
        "data": data(log.data),
        "blockHash": data(ctx.block_hash),
        "blockNumber": quantity(ctx.block_number),
        "blockTimestamp": quantity(ctx.block_timestamp),
        "transactionHash": data(tx_hash),
        "transactionIndex": quantity(ctx.index),
        "logIndex": quantity(log_index),
        "removed": False,
    }


def receipt(
    tx: Transaction,
    rcpt: Receipt,
    ctx: TxContext,
    *,
    previous_cumulative_gas: int,
    first_log_index: int,
) -> Json:
    return {
        "type": quantity(rcpt.tx_type),
        "status": quantity(rcpt.status),
        "transactionHash": data(tx.hash),
        "transactionIndex": quantity(ctx.index),
        "blockHash": data(ctx.block_hash),
        "blockNumber": quantity(ctx.block_number),
        "from": address(tx.sender),
        "to": address(tx.to),
        "cumulativeGasUsed": quantity(rcpt.cumulative_gas_used),
        "gasUsed": quantity(rcpt.cumulative_gas_used - previous_cumulative_gas),
        "effectiveGasPrice": quantity(effective_gas_price(tx, ctx.base_fee)),
        "contractAddress": address(create_address(tx.sender, tx.nonce) if tx.is_create else None),
        "logs": [
            log_entry(log, first_log_index + i, tx.hash, ctx) for i, log in enumerate(rcpt.logs)
        ],
        "logsBloom": data(rcpt.bloom),
    }


# --- blocks ---------------------------------------------------------------------------------


def _bytes_item_length(payload: bytes) -> int:
    """Length of ``payload`` RLP-encoded as a byte string."""
    if len(payload) == 1 and payload[0] < 0x80:
        return 1
    return len(length_prefix(len(payload), 0x80)) + len(payload)


def block_size(header: Header, raw_txs: Sequence[bytes]) -> int:
    """``len(rlp([header, txs, uncles=[], withdrawals=[]]))`` without building the block.

    A legacy transaction is an RLP list and is embedded as is; a typed one (``type || rlp``)
    is embedded as a byte string, as in EIP-2718 block bodies.
    """
    txs_payload = sum(len(raw) if raw[0] >= 0xC0 else _bytes_item_length(raw) for raw in raw_txs)
    payload = (
        len(rlp.encode(header))
        + len(length_prefix(txs_payload, 0xC0))
        + txs_payload
        + 2  # empty uncles and withdrawals lists: 0xc0 each
    )
    return len(length_prefix(payload, 0xC0)) + payload


def block(header: Header, block_hash: bytes, size: int, transactions: list[Any]) -> Json:
    """``transactions`` holds formatted hashes or full transaction objects."""
    return {
        "number": quantity(header.block_number),
        "hash": data(block_hash),
        "parentHash": data(header.parent_hash),
        "nonce": data(header.nonce),
        "mixHash": data(header.mix_hash),
        "sha3Uncles": data(header.uncles_hash),
        "logsBloom": data(header.bloom.to_bytes(256, "big")),
        "transactionsRoot": data(header.transaction_root),
        "stateRoot": data(header.state_root),
        "receiptsRoot": data(header.receipt_root),
        "miner": address(header.coinbase),
        "difficulty": quantity(header.difficulty),
        "extraData": data(header.extra_data),
        "size": quantity(size),
        "gasLimit": quantity(header.gas_limit),
        "gasUsed": quantity(header.gas_used),
        "timestamp": quantity(header.timestamp),
        "baseFeePerGas": quantity(header.base_fee_per_gas),
        "withdrawalsRoot": data(header.withdrawals_root),
        "blobGasUsed": quantity(header.blob_gas_used),
        "excessBlobGas": quantity(header.excess_blob_gas),
        "parentBeaconBlockRoot": data(header.parent_beacon_block_root),
        "requestsHash": data(header.requests_hash),
        "transactions": transactions,
        "withdrawals": [],
        "uncles": [],
    }
