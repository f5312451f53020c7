"""to_pyevm_transaction's fast path builds exactly what py-evm's decoder returns."""

from __future__ import annotations

import pytest
from eth.vm.forks.prague.transactions import PragueTransactionBuilder

from cybermiles.bench.txgen import bench_private_key, sign_dynamic_fee_tx
from cybermiles.chain.transactions import decode_transaction
from cybermiles.execution.block import to_pyevm_transaction

CHAIN_ID = 18
KEY = bench_private_key(7)
TO = bytes.fromhex("00112233445566778899aabbccddeeff00112233")

CASES = {
    "erc20 call": dict(to=TO, value=0, data=bytes.fromhex("a9059cbb") + b"\x01" * 64, gas=60_000),
    "transfer": dict(to=TO, value=10**18 + 1, data=b"", gas=21_000),
    "create": dict(to=None, value=5, data=b"\x60\x00\x60\x00\xf3" * 40, gas=200_000),
    "zero everything": dict(to=TO, value=0, data=b"", gas=21_000, nonce=0, fee=0, tip=0),
    "big numbers": dict(
        to=TO, value=2**255, data=b"\x00" * 100, gas=2**63, nonce=2**64 - 2, fee=2**200, tip=2**100
    ),
    "access list (decoder path)": dict(
        to=TO, value=1, data=b"", gas=50_000, access_list=[(TO, [0, 2**256 - 1])]
    ),
}


def _raw(case: dict) -> bytes:
    return sign_dynamic_fee_tx(
        KEY,
        chain_id=CHAIN_ID,
        nonce=case.get("nonce", 3),
        max_priority_fee_per_gas=case.get("tip", 10**9),
        max_fee_per_gas=case.get("fee", 2 * 10**9),
        gas=case["gas"],
        to=case["to"],
        value=case["value"],
        data=case["data"],
        access_list=case.get("access_list", ()),
    )


@pytest.mark.parametrize("name", CASES)
def test_same_object_as_pyevm_decode(name: str) -> None:
    raw = _raw(CASES[name])
    tx = decode_transaction(raw, CHAIN_ID)
    ours = to_pyevm_transaction(tx)
    theirs = PragueTransactionBuilder.decode(raw)
    assert type(ours) is type(theirs)
    assert type(ours._inner) is type(theirs._inner)  # type: ignore[attr-defined]
    assert ours._inner.as_dict() == theirs._inner.as_dict()  # type: ignore[attr-defined]
    assert ours._inner._cached_rlp == theirs._inner._cached_rlp  # type: ignore[attr-defined]
    assert ours.encode() == theirs.encode() == raw  # type: ignore[attr-defined]
    assert ours.hash == theirs.hash == tx.hash  # type: ignore[attr-defined]
    assert ours.sender == theirs.sender == tx.sender  # type: ignore[attr-defined]
    assert ours.intrinsic_gas == theirs.intrinsic_gas  # type: ignore[attr-defined]
    for attr in (
        "to",
        "value",
        "data",
        "gas",
        "gas_price",
        "max_fee_per_gas",
        "max_priority_fee_per_gas",
        "nonce",
        "access_list",
        "chain_id",
        "y_parity",
        "r",
        "s",
        "type_id",
        "blob_versioned_hashes",
        "max_fee_per_blob_gas",
        "authorization_list",
    ):
        assert _attr(ours, attr) == _attr(theirs, attr), attr


def _attr(obj: object, name: str) -> object:
    """The attribute's value, or the type and message of what reading it raises."""
    try:
        return getattr(obj, name)
    except Exception as exc:
        return ("raises", type(exc), str(exc))
