"""Intrinsic gas and EIP-7623 floor data gas of a transaction (Prague rules).

The canonical implementations live in ``cybermiles.chain.transactions``; this module
re-exports them. Until they land there, an equivalent local fallback is used:

* intrinsic = 21000 (+32000 for a create) + 4 per zero / 16 per non-zero data byte
  + 2 per 32-byte initcode word for a create (EIP-3860) + 2400 per access-list address
  + 1900 per storage key + 25000 per EIP-7702 authorization;
* floor = 21000 + 10 * tokens, tokens = zero bytes + 4 * non-zero bytes.
"""

from __future__ import annotations

try:
    from cybermiles.chain.transactions import (  # type: ignore[attr-defined]
        floor_data_gas,
        intrinsic_gas,
    )
except ImportError:  # pragma: no cover - fallback until chain.transactions provides them
    from cybermiles.chain.transactions import Transaction

    TX_GAS = 21_000
    TX_CREATE_EXTRA_GAS = 32_000
    DATA_ZERO_GAS = 4
    DATA_NONZERO_GAS = 16
    INITCODE_WORD_GAS = 2
    ACCESS_LIST_ADDRESS_GAS = 2_400
    ACCESS_LIST_STORAGE_KEY_GAS = 1_900
    PER_AUTH_BASE_GAS = 25_000
    FLOOR_TOKEN_GAS = 10

    def intrinsic_gas(tx: Transaction) -> int:
        data = tx.data
        zeros = data.count(0)
        gas = TX_GAS + DATA_ZERO_GAS * zeros + DATA_NONZERO_GAS * (len(data) - zeros)
        if tx.to is None:
            gas += TX_CREATE_EXTRA_GAS + INITCODE_WORD_GAS * ((len(data) + 31) // 32)
        for _address, keys in tx.access_list:
            gas += ACCESS_LIST_ADDRESS_GAS + ACCESS_LIST_STORAGE_KEY_GAS * len(keys)
        return gas + PER_AUTH_BASE_GAS * len(tx.authorization_list)

    def floor_data_gas(tx: Transaction) -> int:
        data = tx.data
        zeros = data.count(0)
        return TX_GAS + FLOOR_TOKEN_GAS * (zeros + 4 * (len(data) - zeros))


__all__ = ["floor_data_gas", "intrinsic_gas"]
