"""The hand-written RLP encoders produce exactly what pyrlp produces."""

from __future__ import annotations

import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermiles.chain.receipts import Log, Receipt, decode_receipt
from cybermiles.chain.rlp_codec import encode_bytes, encode_items, encode_uint, index_keys
from cybermiles.state.account import Account, decode_account, encode_account

uints = st.integers(min_value=0, max_value=2**256 - 1)
blobs = st.binary(max_size=300)
hashes = st.binary(min_size=32, max_size=32)


@given(blobs)
def test_bytes(data: bytes) -> None:
    assert encode_bytes(data) == rlp.encode(data)


@given(uints)
def test_uint(value: int) -> None:
    assert encode_uint(value) == rlp.encode(value)


@given(st.lists(blobs, max_size=20))
def test_list_of_strings(items: list[bytes]) -> None:
    assert encode_items(encode_bytes(i) for i in items) == rlp.encode(items)


def test_index_keys() -> None:
    assert index_keys(300) == [rlp.encode(i) for i in range(300)]


@given(uints, uints, hashes, hashes)
def test_account(nonce: int, balance: int, root: bytes, code_hash: bytes) -> None:
    account = Account(nonce % 2**64, balance, root, code_hash)
    encoded = encode_account(account)
    assert encoded == rlp.encode([account.nonce, balance, root, code_hash])
    assert decode_account(encoded) == account


logs = st.builds(
    Log,
    st.binary(min_size=20, max_size=20),
    st.lists(hashes, max_size=4).map(tuple),
    blobs,
)


@settings(max_examples=200)
@given(
    st.sampled_from([0, 1, 2, 4]),
    st.integers(0, 1),
    st.integers(0, 2**63),
    st.lists(logs, max_size=4).map(tuple),
    st.binary(min_size=256, max_size=256),
)
def test_receipt(tx_type: int, status: int, gas: int, logs: tuple, bloom: bytes) -> None:
    receipt = Receipt(tx_type, status, gas, logs, bloom)
    payload = rlp.encode(
        [status, gas, bloom, [[log.address, list(log.topics), log.data] for log in logs]]
    )
    expected = payload if tx_type == 0 else bytes([tx_type]) + payload
    assert receipt.encode() == expected
    assert decode_receipt(expected) == receipt
