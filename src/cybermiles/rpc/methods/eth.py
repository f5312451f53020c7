"""eth_* methods: chain identity, state reads, transaction submission, blocks and receipts.

Rules:

* Block tags: latest / pending / safe / finalized read the head, earliest block 0 (see
  ``rpc.params``); state getters also take a block hash or an EIP-1898 object.
* Unknown block: block getters return null; state getters fail with -32000 "header not found".
  A height outside the kept state window fails with -32000 and the ``StateUnavailable`` message.
* eth_getTransactionCount with "pending" counts the pool's executable transactions
  (``mempool.pending_nonce``); other state reads treat "pending" as the head.
* eth_gasPrice and eth_maxPriorityFeePerGas both answer the chain's ``min_gas_price`` (the base
  fee is always 0, so the tip is the whole price).
* eth_getTransactionByHash also finds pool transactions (block fields null);
  eth_getTransactionReceipt is null until the transaction is mined.
* eth_sendRawTransaction: rejections are -32000 with geth's message.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Any

from cybermiles.rpc import format as fmt
from cybermiles.rpc import lookup, views
from cybermiles.rpc import params as p
from cybermiles.rpc.errors import ParamError
from cybermiles.rpc.registry import MethodTable

methods = MethodTable()

# --- chain identity ---------------------------------------------------------------------------


@methods.method("eth_chainId")
def chain_id(node: Any) -> str:
    return fmt.quantity(node.chain_id)


@methods.method("eth_syncing")
def syncing(node: Any) -> bool:
    return False


@methods.method("eth_blockNumber")
def block_number(node: Any) -> str:
    return fmt.quantity(lookup.head_number(node))


@methods.method("eth_gasPrice")
def gas_price(node: Any) -> str:
    return fmt.quantity(node.chain.params.min_gas_price)


@methods.method("eth_maxPriorityFeePerGas")
def max_priority_fee_per_gas(node: Any) -> str:
    return fmt.quantity(node.chain.params.min_gas_price)


@methods.method("eth_accounts")
def accounts(node: Any) -> list[str | None]:
    """The dev accounts (devnet) and --unlock'ed keystore accounts; [] on other nodes."""
    return [fmt.address(addr) for addr in node.accounts.addresses()]


# --- state ------------------------------------------------------------------------------------


@methods.method("eth_getBalance")
def get_balance(node: Any, address: Any, block: Any = None) -> str:
    addr, ref = p.address(address, "address"), p.block_ref(block, "block")
    with lookup.state(node, ref) as state:
        return fmt.quantity(state.get_balance(addr))


@methods.method("eth_getTransactionCount")
def get_transaction_count(node: Any, address: Any, block: Any = None) -> str:
    addr, ref = p.address(address, "address"), p.block_ref(block, "block")
    if ref.tag == "pending":
        return fmt.quantity(node.mempool.pending_nonce(addr))
    with lookup.state(node, ref) as state:
        return fmt.quantity(state.get_nonce(addr))


@methods.method("eth_getCode")
def get_code(node: Any, address: Any, block: Any = None) -> str:
    addr, ref = p.address(address, "address"), p.block_ref(block, "block")
    with lookup.state(node, ref) as state:
        return fmt.data(state.get_code(addr))


@methods.method("eth_getStorageAt")
def get_storage_at(node: Any, address: Any, slot: Any, block: Any = None) -> str:
    addr, key = p.address(address, "address"), p.storage_slot(slot, "slot")
    ref = p.block_ref(block, "block")
    with lookup.state(node, ref) as state:
        return fmt.word(state.get_storage(addr, key))


# --- transactions -----------------------------------------------------------------------------


@methods.method("eth_sendRawTransaction")
def send_raw_transaction(node: Any, data: Any) -> str:
    return fmt.data(node.submit_raw_transaction(p.data(data, "data")))


@methods.batch_prep("eth_sendRawTransaction")
def decode_raw_transactions(node: Any, batch: list[list[Any]]) -> AbstractContextManager[Any]:
    """A batch's raw transactions are decoded together, in the node's decoder process."""
    raws = []
    for params in batch:
        with contextlib.suppress(ParamError, IndexError):
            raws.append(p.data(params[0], "data"))
    return node.tx_decoder.prepared(raws)


@methods.method("eth_getTransactionByHash")
def get_transaction_by_hash(node: Any, tx_hash: Any) -> fmt.Json | None:
    h = p.hash32(tx_hash, "tx_hash")
    found = lookup.find_transaction(node, h)
    if found is not None:
        info, index, tx = found
        return fmt.transaction(tx, info.tx_context(index))
    pending = node.mempool.get(h)
    return None if pending is None else fmt.transaction(pending, None)


@methods.method("eth_getTransactionReceipt")
def get_transaction_receipt(node: Any, tx_hash: Any) -> fmt.Json | None:
    found = lookup.find_transaction(node, p.hash32(tx_hash, "tx_hash"))
    if found is None:
        return None
    info, index, tx = found
    return views.receipt_at(info, tx, lookup.receipts(node, info), index)


@methods.method("eth_getTransactionByBlockNumberAndIndex")
def get_transaction_by_block_number_and_index(node: Any, block: Any, index: Any) -> fmt.Json | None:
    ref, i = p.block_number_or_tag(block, "block"), p.uint64(index, "index")
    info = lookup.find_block(node, ref)
    return None if info is None else views.transaction_in_block(node, info, i)


@methods.method("eth_getTransactionByBlockHashAndIndex")
def get_transaction_by_block_hash_and_index(
    node: Any, block_hash: Any, index: Any
) -> fmt.Json | None:
    ref = p.BlockRef(hash=p.hash32(block_hash, "block_hash"))
    i = p.uint64(index, "index")
    info = lookup.find_block(node, ref)
    return None if info is None else views.transaction_in_block(node, info, i)


# --- blocks -----------------------------------------------------------------------------------


@methods.method("eth_getBlockByNumber")
def get_block_by_number(node: Any, block: Any, full_transactions: Any) -> fmt.Json | None:
    ref = p.block_number_or_tag(block, "block")
    full = p.boolean(full_transactions, "full_transactions")
    info = lookup.find_block(node, ref)
    return None if info is None else views.block(node, info, full)


@methods.method("eth_getBlockByHash")
def get_block_by_hash(node: Any, block_hash: Any, full_transactions: Any) -> fmt.Json | None:
    ref = p.BlockRef(hash=p.hash32(block_hash, "block_hash"))
    full = p.boolean(full_transactions, "full_transactions")
    info = lookup.find_block(node, ref)
    return None if info is None else views.block(node, info, full)


@methods.method("eth_getBlockTransactionCountByNumber")
def get_block_transaction_count_by_number(node: Any, block: Any) -> str | None:
    info = lookup.find_block(node, p.block_number_or_tag(block, "block"))
    return None if info is None else fmt.quantity(len(lookup.body(node, info)))


@methods.method("eth_getBlockTransactionCountByHash")
def get_block_transaction_count_by_hash(node: Any, block_hash: Any) -> str | None:
    info = lookup.find_block(node, p.BlockRef(hash=p.hash32(block_hash, "block_hash")))
    return None if info is None else fmt.quantity(len(lookup.body(node, info)))


@methods.method("eth_getBlockReceipts")
def get_block_receipts(node: Any, block: Any) -> list[fmt.Json] | None:
    info = lookup.find_block(node, p.block_ref(block, "block"))
    return None if info is None else views.block_receipts(node, info)
