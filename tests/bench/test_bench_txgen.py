"""The benchmark's fast signer produces transactions our decoder and eth_account both accept."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from cybermiles.bench.txgen import (
    TRANSFER_SELECTOR,
    bench_keys,
    bench_private_key,
    erc20_transfer_data,
    sign_dynamic_fee_tx,
)
from cybermiles.chain.transactions import DYNAMIC_FEE_TX_TYPE, decode_transaction
from cybermiles.crypto.secp256k1 import private_key_to_address

CHAIN_ID = 18
TO = bytes.fromhex("c0ffee0000000000000000000000000000000001")


def test_keys_are_deterministic_and_distinct() -> None:
    keys = bench_keys(50)
    assert [k.private_key for k in keys] == [bench_private_key(i) for i in range(50)]
    assert len({k.address for k in keys}) == 50
    assert all(k.address == private_key_to_address(k.private_key) for k in keys)
    assert bench_keys(3, seed=b"other")[0].private_key != keys[0].private_key


CASES = [
    dict(to=TO, value=1, data=b"", gas=21_000),
    dict(to=TO, value=0, data=erc20_transfer_data(TO, 12345), gas=60_000),
    dict(to=None, value=0, data=b"\x60\x00" * 30, gas=100_000),
    dict(
        to=TO,
        value=2**200,
        data=b"\x00\x01" * 100,
        gas=2**40,
        access_list=[(TO, [1, 2**256 - 1]), (b"\x01" * 20, [])],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=["transfer", "erc20", "create", "access list"])
@pytest.mark.parametrize("index", [0, 1, 999])
def test_decode_and_eth_account_recover_the_signer(case: dict, index: int) -> None:
    key = bench_private_key(index)
    address = private_key_to_address(key)
    nonce = index * 7
    raw = sign_dynamic_fee_tx(
        key,
        chain_id=CHAIN_ID,
        nonce=nonce,
        max_priority_fee_per_gas=10**9,
        max_fee_per_gas=3 * 10**9,
        gas=case["gas"],
        to=case["to"],
        value=case["value"],
        data=case["data"],
        access_list=case.get("access_list", ()),
    )
    tx = decode_transaction(raw, CHAIN_ID)
    assert tx.sender == address
    assert (tx.type, tx.nonce, tx.to, tx.value, tx.data, tx.gas) == (
        DYNAMIC_FEE_TX_TYPE,
        nonce,
        case["to"],
        case["value"],
        case["data"],
        case["gas"],
    )
    assert tx.max_fee_per_gas == 3 * 10**9 and tx.max_priority_fee_per_gas == 10**9
    assert Account.recover_transaction(raw) == Account.from_key(key).address

    # eth_account signs deterministically (RFC 6979) like libsecp256k1: identical bytes.
    fields = {
        "type": 2,
        "chainId": CHAIN_ID,
        "nonce": nonce,
        "maxPriorityFeePerGas": 10**9,
        "maxFeePerGas": 3 * 10**9,
        "gas": case["gas"],
        "value": case["value"],
        "data": case["data"],
        "accessList": [
            {
                "address": to_checksum_address(a),
                "storageKeys": ["0x" + s.to_bytes(32, "big").hex() for s in slots],
            }
            for a, slots in case.get("access_list", ())
        ],
    }
    if case["to"] is not None:
        fields["to"] = to_checksum_address(case["to"])
    signed = Account.sign_transaction(fields, key)
    assert bytes(signed.raw_transaction) == raw


def test_erc20_transfer_data() -> None:
    data = erc20_transfer_data(TO, 5)
    assert TRANSFER_SELECTOR.hex() == "a9059cbb"
    assert data == bytes.fromhex("a9059cbb") + b"\x00" * 12 + TO + (5).to_bytes(32, "big")
    with pytest.raises(ValueError):
        erc20_transfer_data(b"\x01" * 19, 1)
