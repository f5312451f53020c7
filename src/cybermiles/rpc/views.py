"""Spec-shaped JSON for blocks, transactions and receipts read from the node.

``lookup`` finds the data, ``format`` shapes single objects; this module puts them together
(per-block context, gas used per receipt, log indexes across the block) so every method and,
later, subscriptions and filters produce identical objects.
"""

from __future__ import annotations

from typing import Any

from cybermiles.chain.receipts import Receipt
from cybermiles.chain.transactions import Transaction
from cybermiles.crypto.keccak import keccak256
from cybermiles.rpc import format as fmt
from cybermiles.rpc import lookup
from cybermiles.rpc.lookup import BlockInfo


def block(node: Any, info: BlockInfo, full: bool) -> fmt.Json:
    """A block with transaction hashes, or full transactions when ``full``."""
    stored = lookup.body(node, info)
    txs: list[Any]
    if full:
        txs = [
            fmt.transaction(lookup.decode(node, item), info.tx_context(i))
            for i, item in enumerate(stored)
        ]
    else:
        txs = [fmt.data(keccak256(item.raw)) for item in stored]
    raws = [item.raw for item in stored]
    return fmt.block(info.header, info.hash, fmt.block_size(info.header, raws), txs)


def transaction_in_block(node: Any, info: BlockInfo, index: int) -> fmt.Json | None:
    stored = lookup.body(node, info)
    if index >= len(stored):
        return None
    return fmt.transaction(lookup.decode(node, stored[index]), info.tx_context(index))


def receipt_at(info: BlockInfo, tx: Transaction, receipts: list[Receipt], index: int) -> fmt.Json:
    """The receipt of ``tx``, the ``index``-th transaction of the block ``info``."""
    previous = receipts[index - 1].cumulative_gas_used if index else 0
    first_log = sum(len(r.logs) for r in receipts[:index])
    return fmt.receipt(
        tx,
        receipts[index],
        info.tx_context(index),
        previous_cumulative_gas=previous,
        first_log_index=first_log,
    )


def block_receipts(node: Any, info: BlockInfo) -> list[fmt.Json]:
    txs, receipts = lookup.transactions(node, info), lookup.receipts(node, info)
    out = []
    previous, first_log = 0, 0
    for index, (tx, rcpt) in enumerate(zip(txs, receipts, strict=True)):
        out.append(
            fmt.receipt(
                tx,
                rcpt,
                info.tx_context(index),
                previous_cumulative_gas=previous,
                first_log_index=first_log,
            )
        )
        previous = rcpt.cumulative_gas_used
        first_log += len(rcpt.logs)
    return out
