"""The CyberMiles fee model on top of Ethereum's EIP-1559 rules with a zero base fee.

* ``baseFeePerGas`` is always 0, so nothing is burned: a transaction pays
  ``gas_used * effective_gas_price`` to the block's fee recipient, where
  ``effective_gas_price = min(max_fee_per_gas, max_priority_fee_per_gas)``.
* A transaction whose effective gas price is below ``min_gas_price`` is *free*. Only a plain
  transfer may be free: ``to`` set, no data, no access list, not EIP-7702, recipient without
  code. Each sender may send ``free_tx_quota`` free transfers per window of ``free_tx_window``
  blocks (windows are aligned: window = block number // free_tx_window).
* Everything else (contract creation and calls) must pay at least ``min_gas_price``.
"""

from __future__ import annotations

from cybermiles.chain.params import Params
from cybermiles.chain.transactions import SET_CODE_TX_TYPE, Transaction

BASE_FEE = 0
TX_GAS = 21_000
# Addresses below 0x10000 hold precompiles and native modules: never the plain-transfer path.
RESERVED_ADDRESS_LIMIT = 0x10000


def effective_gas_price(tx: Transaction, base_fee: int = BASE_FEE) -> int:
    """EIP-1559 price per gas actually paid (legacy/2930 txs have max fee == tip == gasPrice)."""
    return min(tx.max_fee_per_gas, base_fee + tx.max_priority_fee_per_gas)


def is_free(tx: Transaction, params: Params) -> bool:
    return effective_gas_price(tx) < params.min_gas_price


def is_plain_transfer_shape(tx: Transaction) -> bool:
    """A value transfer that needs no EVM, provided the recipient turns out to have no code."""
    return (
        tx.to is not None
        and not tx.data
        and not tx.access_list
        and tx.type != SET_CODE_TX_TYPE
        and int.from_bytes(tx.to, "big") >= RESERVED_ADDRESS_LIMIT
    )


def free_tx_window(block_number: int, params: Params) -> int:
    return block_number // params.free_tx_window
