"""txpool_* methods: what the transaction pool holds, in geth's shapes.

Rules:

* txpool_status: ``{"pending": q, "queued": q}``, counts as hex quantities. Pending
  transactions are executable now (contiguous nonces from the sender's account nonce), queued
  ones wait behind a nonce gap.
* txpool_content: ``{"pending": {address: {nonce: tx}}, "queued": {...}}``; addresses are
  EIP-55 checksummed and nonces decimal strings (geth's ``account.Hex()`` and ``%d``), sorted;
  transactions are pending transaction objects (block fields null, ``gasPrice`` = the fee cap).
* txpool_contentFrom(address): ``{"pending": {nonce: tx}, "queued": {nonce: tx}}`` for one
  sender.
* txpool_inspect: like txpool_content with each transaction summarised as geth does:
  ``"<to>: <value> wei + <gas> gas × <gasPrice> wei"`` (``contract creation: ...`` without
  ``to``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_utils import to_checksum_address

from cybermiles.chain.transactions import Transaction
from cybermiles.rpc import format as fmt
from cybermiles.rpc import params as p
from cybermiles.rpc.registry import MethodTable

methods = MethodTable()

ByNonce = dict[int, Transaction]
POOLS = ("pending", "queued")


def _by_nonce(txs: ByNonce, shape: Callable[[Transaction], Any]) -> dict[str, Any]:
    return {str(nonce): shape(txs[nonce]) for nonce in sorted(txs)}


def _by_sender(groups: dict[bytes, ByNonce], shape: Callable[[Transaction], Any]) -> dict[str, Any]:
    return {
        to_checksum_address(sender): _by_nonce(groups[sender], shape) for sender in sorted(groups)
    }


def _pending_tx(tx: Transaction) -> fmt.Json:
    return fmt.transaction(tx, None)


def summary(tx: Transaction) -> str:
    """geth's txpool_inspect line for ``tx``."""
    cost = f"{tx.value} wei + {tx.gas} gas × {tx.gas_price} wei"
    if tx.to is None:
        return f"contract creation: {cost}"
    return f"{to_checksum_address(tx.to)}: {cost}"


@methods.method("txpool_status")
def status(node: Any) -> dict[str, str]:
    counts = node.mempool.status()
    return {"pending": fmt.quantity(counts["pending"]), "queued": fmt.quantity(counts["queued"])}


@methods.method("txpool_content")
def content(node: Any) -> dict[str, Any]:
    pool = node.mempool.content()
    return {name: _by_sender(pool[name], _pending_tx) for name in POOLS}


@methods.method("txpool_contentFrom")
def content_from(node: Any, address: Any) -> dict[str, Any]:
    sender = p.address(address, "address")
    pool = node.mempool.content()
    return {name: _by_nonce(pool[name].get(sender, {}), _pending_tx) for name in POOLS}


@methods.method("txpool_inspect")
def inspect(node: Any) -> dict[str, Any]:
    pool = node.mempool.content()
    return {name: _by_sender(pool[name], summary) for name in POOLS}
