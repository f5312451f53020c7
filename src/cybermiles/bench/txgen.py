"""Fast pre-signing of EIP-1559 transactions for benchmarks (no eth_account on the hot path).

``eth_account`` signs about 900 transactions per second; building the signing payload with
``rlp.encode`` and signing the 32-byte hash with :func:`cybermiles.crypto.secp256k1.sign`
(libsecp256k1 via coincurve) is more than an order of magnitude faster:

* unsigned payload = ``rlp([chain_id, nonce, max_priority_fee_per_gas, max_fee_per_gas, gas,
  to, value, data, access_list])``;
* signing hash = ``keccak256(0x02 || payload)``;
* raw transaction = ``0x02 || rlp([...the nine fields..., y_parity, r, s])``.

Keys are deterministic (``keccak256(seed || be64(index))``) so every run signs the same
transactions. They are benchmark keys only: never fund them on a real chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import rlp

from cybermiles.crypto.keccak import keccak256
from cybermiles.crypto.secp256k1 import SECP256K1_N, private_key_to_address, sign

DYNAMIC_FEE_TX_TYPE = b"\x02"
DEFAULT_SEED = b"cybermiles bench key"
TRANSFER_SELECTOR = keccak256(b"transfer(address,uint256)")[:4]  # 0xa9059cbb

AccessListInput = Sequence[tuple[bytes, Sequence[int]]]


@dataclass(frozen=True, slots=True)
class BenchKey:
    """A deterministic benchmark account: its index, private key and address."""

    index: int
    private_key: bytes
    address: bytes


def bench_private_key(index: int, seed: bytes = DEFAULT_SEED) -> bytes:
    """The ``index``-th benchmark private key: ``keccak256(seed || be64(index))``.

    The (astronomically unlikely) hash outside ``[1, N)`` is re-hashed until valid.
    """
    key = keccak256(seed + index.to_bytes(8, "big"))
    while not 0 < int.from_bytes(key, "big") < SECP256K1_N:
        key = keccak256(key)
    return key


def bench_keys(count: int, seed: bytes = DEFAULT_SEED) -> list[BenchKey]:
    """``count`` deterministic benchmark accounts (index 0 .. count-1)."""
    out = []
    for i in range(count):
        key = bench_private_key(i, seed)
        out.append(BenchKey(i, key, private_key_to_address(key)))
    return out


def _access_list_rlp(access_list: AccessListInput) -> list[list[object]]:
    return [
        [address, [slot.to_bytes(32, "big") for slot in slots]] for address, slots in access_list
    ]


def sign_dynamic_fee_tx(
    private_key: bytes,
    *,
    chain_id: int,
    nonce: int,
    max_priority_fee_per_gas: int,
    max_fee_per_gas: int,
    gas: int,
    to: bytes | None,
    value: int = 0,
    data: bytes = b"",
    access_list: AccessListInput = (),
) -> bytes:
    """Sign an EIP-1559 (type 2) transaction and return its raw bytes (``0x02 || rlp(...)``)."""
    if to is not None and len(to) != 20:
        raise ValueError("to must be a 20-byte address or None (contract creation)")
    fields: list[object] = [
        chain_id,
        nonce,
        max_priority_fee_per_gas,
        max_fee_per_gas,
        gas,
        b"" if to is None else to,
        value,
        data,
        _access_list_rlp(access_list),
    ]
    msg_hash = keccak256(DYNAMIC_FEE_TX_TYPE + rlp.encode(fields))
    y_parity, r, s = sign(msg_hash, private_key)
    fields += (y_parity, r, s)
    return DYNAMIC_FEE_TX_TYPE + rlp.encode(fields)


def erc20_transfer_data(to: bytes, amount: int) -> bytes:
    """Calldata of ``transfer(address to, uint256 amount)``."""
    if len(to) != 20:
        raise ValueError("to must be a 20-byte address")
    return TRANSFER_SELECTOR + to.rjust(32, b"\x00") + amount.to_bytes(32, "big")
