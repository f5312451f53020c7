"""decode_transaction, intrinsic_gas and floor_data_gas against eth_account and py-evm.

References:

* Transactions are signed by eth_account (``Account.sign_transaction`` /
  ``Account.sign_authorization``); the sender must equal ``Account.recover_transaction`` and
  py-evm's ``PragueTransactionBuilder.decode(raw).sender``; every field must equal py-evm's.
* Intrinsic gas: py-evm's Prague ``get_intrinsic_gas()`` (21000, 32000 per create, calldata,
  access list, 25000 per authorization) does NOT include the EIP-3860 initcode word cost
  (py-evm charges it when the create message runs) nor the EIP-7623 floor (py-evm applies
  it after execution in ``PragueTransactionExecutor.calc_data_floor_gas``). So we assert
  ``intrinsic_gas == py-evm + 2 * ceil(len(data) / 32)`` for creates (+0 otherwise) and
  ``floor_data_gas == calc_data_floor_gas(tx, gas_used=0, gas_refund=0)``.
* Malformed and adversarial inputs are built with ``rlp.encode`` and signed with
  ``cybermiles.crypto.secp256k1.sign`` so that only the property under test is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import rlp
from eth.vm.forks.prague.state import PragueTransactionExecutor
from eth.vm.forks.prague.transactions import PragueTransactionBuilder
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rlp.codec import length_prefix

from cybermiles.chain.errors import InvalidTransaction
from cybermiles.chain.transactions import (
    MAX_TX_SIZE,
    Transaction,
    decode_transaction,
    floor_data_gas,
    intrinsic_gas,
)
from cybermiles.crypto.keccak import keccak256
from cybermiles.crypto.secp256k1 import (
    SECP256K1_HALF_N,
    SECP256K1_N,
    private_key_to_address,
    sign,
)

CHAIN_ID = 18
KEY = (0x4C0883A69102937D6231471B5DBB6204FE5129617082792AE468D01A3F362318).to_bytes(32, "big")
SENDER = private_key_to_address(KEY)
TO = b"\x11" * 20

UNPROTECTED = "only replay-protected (EIP-155) transactions allowed over RPC"
WRONG_CHAIN = "invalid chain id for signer"
NOT_SUPPORTED = "transaction type not supported"
BAD_SIGNATURE = "invalid transaction v, r, s values"
NONCE_MAX = "nonce exceeds 2^64-1"
EMPTY_AUTHS = "EIP-7702 transaction with empty auth list"
SET_CODE_CREATE = "EIP-7702 transaction cannot be used to create contract"

SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- builders ---------------------------------------------------------------------------

Field = Any  # int | bytes | list: anything rlp.encode accepts


def build_typed(tx_type: int, fields: list[Field], key: bytes = KEY) -> bytes:
    """``type || rlp(fields + signature)``, signed over exactly those (possibly odd) fields."""
    prefix = bytes([tx_type])
    y_parity, r, s = sign(keccak256(prefix + rlp.encode(fields)), key)
    return prefix + rlp.encode([*fields, y_parity, r, s])


def with_signature(tx_type: int, fields: list[Field], y_parity: Field, r: Field, s: Field) -> bytes:
    return bytes([tx_type]) + rlp.encode([*fields, y_parity, r, s])


def build_legacy(fields: list[Field], chain_id: int = CHAIN_ID, key: bytes = KEY) -> bytes:
    y_parity, r, s = sign(keccak256(rlp.encode([*fields, chain_id, 0, 0])), key)
    return rlp.encode([*fields, chain_id * 2 + 35 + y_parity, r, s])


def assemble(prefix: bytes, encoded_items: list[bytes]) -> bytes:
    """A list from already-encoded items (to plant non-canonical encodings)."""
    body = b"".join(encoded_items)
    return prefix + length_prefix(len(body), 0xC0) + body


def legacy_fields(**overrides: Field) -> list[Field]:
    values = {"nonce": 0, "gas_price": 1, "gas": 21_000, "to": TO, "value": 1, "data": b""}
    values.update(overrides)
    return list(values.values())


def fee_fields(**overrides: Field) -> list[Field]:
    values = {
        "chain_id": CHAIN_ID,
        "nonce": 0,
        "tip": 1,
        "cap": 2,
        "gas": 21_000,
        "to": TO,
        "value": 1,
        "data": b"",
        "access_list": [],
    }
    values.update(overrides)
    return list(values.values())


def access_list_fields(**overrides: Field) -> list[Field]:
    values = {
        "chain_id": CHAIN_ID,
        "nonce": 0,
        "gas_price": 1,
        "gas": 21_000,
        "to": TO,
        "value": 1,
        "data": b"",
        "access_list": [],
    }
    values.update(overrides)
    return list(values.values())


def signed_auth(
    chain_id: int = CHAIN_ID, address: bytes = b"\x22" * 20, nonce: int = 0, key: bytes = KEY
) -> list[Field]:
    y_parity, r, s = sign(keccak256(b"\x05" + rlp.encode([chain_id, address, nonce])), key)
    return [chain_id, address, nonce, y_parity, r, s]


def set_code_fields(**overrides: Field) -> list[Field]:
    auth_list = overrides.pop("auth_list", [signed_auth()])
    return [*fee_fields(**overrides), auth_list]


def decode(raw: bytes, chain_id: int = CHAIN_ID) -> Transaction:
    return decode_transaction(raw, chain_id)


def invalid(raw: bytes, chain_id: int = CHAIN_ID) -> str:
    with pytest.raises(InvalidTransaction) as info:
        decode_transaction(raw, chain_id)
    return str(info.value)


# --- hypothesis strategies --------------------------------------------------------------

private_keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
addresses = st.binary(min_size=20, max_size=20)
uint256 = st.integers(0, 2**256 - 1)
small_or_huge = st.one_of(st.integers(0, 10**12), uint256)
chain_ids = st.one_of(st.just(CHAIN_ID), st.integers(1, 2**64))
access_lists = st.lists(st.tuples(addresses, st.lists(uint256, max_size=3)), max_size=3)


def account_dict_access_list(entries: list[tuple[bytes, list[int]]]) -> list[dict[str, Any]]:
    return [
        {
            "address": to_checksum_address(address),
            "storageKeys": ["0x" + key.to_bytes(32, "big").hex() for key in keys],
        }
        for address, keys in entries
    ]


@st.composite
def common_fields(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "nonce": draw(st.integers(0, 2**64 - 2)),
        "gas": draw(st.integers(0, 2**64 - 1)),
        "value": draw(small_or_huge),
        "data": draw(st.binary(max_size=300)),
        "chainId": draw(chain_ids),
    }
    to = draw(st.none() | addresses)
    if to is not None:
        fields["to"] = to_checksum_address(to)
    return fields


@st.composite
def legacy_txs(draw: st.DrawFn) -> dict[str, Any]:
    return {**draw(common_fields()), "gasPrice": draw(small_or_huge)}


@st.composite
def access_list_txs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        **draw(common_fields()),
        "type": 1,
        "gasPrice": draw(small_or_huge),
        "accessList": account_dict_access_list(draw(access_lists)),
    }


@st.composite
def dynamic_fee_txs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        **draw(common_fields()),
        "type": 2,
        "maxFeePerGas": draw(small_or_huge),
        "maxPriorityFeePerGas": draw(small_or_huge),
        "accessList": account_dict_access_list(draw(access_lists)),
    }


@st.composite
def set_code_txs(draw: st.DrawFn) -> tuple[dict[str, Any], list[bytes | None]]:
    """A type-4 tx dict and, per authorization, the authority decode must report."""
    tx = draw(dynamic_fee_txs())
    tx["type"] = 4
    if "to" not in tx:
        tx["to"] = to_checksum_address(draw(addresses))
    auths, authorities = [], []
    for _ in range(draw(st.integers(1, 3))):
        auth_chain = draw(st.sampled_from([0, tx["chainId"], tx["chainId"] + 1]))
        auth_nonce = draw(st.one_of(st.integers(0, 2**64 - 2), st.just(2**64 - 1)))
        key = draw(private_keys)
        auth = {"chainId": auth_chain, "address": draw(addresses), "nonce": auth_nonce}
        auths.append(Account.sign_authorization(auth, key))
        valid = auth_chain in (0, tx["chainId"]) and auth_nonce < 2**64 - 1
        authorities.append(private_key_to_address(key) if valid else None)
    tx["authorizationList"] = auths
    return tx, authorities


# --- property tests against eth_account and py-evm --------------------------------------


def check_against_references(tx_dict: dict[str, Any], key: bytes) -> Transaction:
    signed = Account.sign_transaction(tx_dict, key)
    raw = bytes(signed.raw_transaction)
    chain_id = tx_dict["chainId"]
    tx = decode_transaction(raw, chain_id)
    reference = PragueTransactionBuilder.decode(raw)

    assert tx.sender == bytes.fromhex(Account.recover_transaction(raw)[2:])
    assert tx.sender == private_key_to_address(key) == reference.sender
    assert tx.hash == keccak256(raw) == bytes(signed.hash) == reference.hash
    assert tx.raw is raw
    assert tx.type == tx_dict.get("type", 0)
    assert tx.chain_id == chain_id
    assert tx.nonce == tx_dict["nonce"] == reference.nonce
    assert tx.gas == tx_dict["gas"] == reference.gas
    assert tx.value == tx_dict["value"] == reference.value
    assert tx.data == tx_dict["data"] == reference.data
    assert tx.to == (reference.to or None)
    assert tx.is_create == ("to" not in tx_dict)
    assert (tx.r, tx.s) == (reference.r, reference.s) == (signed.r, signed.s)
    assert tx.v == signed.v
    if tx.type == 0:
        assert tx.v == reference.v
        assert tx.access_list == ()
    else:
        assert tx.v == reference.y_parity
        assert tx.access_list == tuple(
            (entry.account, tuple(entry.storage_keys)) for entry in reference.access_list
        )
    if tx.type in (0, 1):
        assert tx.gas_price == tx.max_fee_per_gas == tx.max_priority_fee_per_gas
        assert tx.gas_price == tx_dict["gasPrice"] == reference.gas_price
    else:
        assert tx.gas_price == tx.max_fee_per_gas == tx_dict["maxFeePerGas"]
        assert tx.max_fee_per_gas == reference.max_fee_per_gas
        assert tx.max_priority_fee_per_gas == tx_dict["maxPriorityFeePerGas"]
        assert tx.max_priority_fee_per_gas == reference.max_priority_fee_per_gas

    initcode_words = (len(tx.data) + 31) // 32 if tx.is_create else 0
    assert intrinsic_gas(tx) == reference.get_intrinsic_gas() + 2 * initcode_words
    assert floor_data_gas(tx) == PragueTransactionExecutor.calc_data_floor_gas(reference, 0, 0)
    return tx


@SLOW
@given(legacy_txs(), private_keys)
def test_legacy_matches_references(tx_dict: dict[str, Any], key: bytes) -> None:
    tx = check_against_references(tx_dict, key)
    assert tx.v in (tx.chain_id * 2 + 35, tx.chain_id * 2 + 36)


@SLOW
@given(access_list_txs(), private_keys)
def test_access_list_tx_matches_references(tx_dict: dict[str, Any], key: bytes) -> None:
    check_against_references(tx_dict, key)


@SLOW
@given(dynamic_fee_txs(), private_keys)
def test_dynamic_fee_tx_matches_references(tx_dict: dict[str, Any], key: bytes) -> None:
    check_against_references(tx_dict, key)


@SLOW
@given(set_code_txs(), private_keys)
def test_set_code_tx_matches_references(
    case: tuple[dict[str, Any], list[bytes | None]], key: bytes
) -> None:
    tx_dict, authorities = case
    tx = check_against_references(tx_dict, key)
    reference = PragueTransactionBuilder.decode(tx.raw)
    assert len(tx.authorization_list) == len(reference.authorization_list)
    for auth, ref, signed, authority in zip(
        tx.authorization_list,
        reference.authorization_list,
        tx_dict["authorizationList"],
        authorities,
        strict=True,
    ):
        assert (auth.chain_id, auth.address, auth.nonce) == (ref.chain_id, ref.address, ref.nonce)
        assert (auth.y_parity, auth.r, auth.s) == (ref.y_parity, ref.r, ref.s)
        assert (auth.y_parity, auth.r, auth.s) == (signed.y_parity, signed.r, signed.s)
        assert auth.authority == authority


def test_known_legacy_vector_from_eip155() -> None:
    """The EIP-155 example transaction (chain 1, nonce 9, key 0x46...46)."""
    raw = bytes.fromhex(
        "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a7640000"
        "8025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f"
        "761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
    )
    tx = decode(raw, chain_id=1)
    assert tx.sender == private_key_to_address(b"\x46" * 32)
    assert tx.sender == bytes.fromhex("9d8a62f656a8d1615c1294fd71e9cfb3e4855a4f")
    assert (tx.nonce, tx.gas_price, tx.gas, tx.value) == (9, 20 * 10**9, 21000, 10**18)
    assert tx.to == b"\x35" * 20
    assert tx.v == 37
    assert intrinsic_gas(tx) == 21000


def test_accepts_bytes_like_input_and_keeps_plain_bytes() -> None:
    raw = build_typed(2, fee_fields())
    for variant in (bytearray(raw), memoryview(raw)):
        tx = decode(variant)  # type: ignore[arg-type]
        assert type(tx.raw) is bytes
        assert tx.raw == raw
        assert tx.sender == SENDER
    with pytest.raises(TypeError):
        decode_transaction(raw.hex(), CHAIN_ID)  # type: ignore[arg-type]


def test_boundary_values_are_accepted() -> None:
    tx = decode(build_typed(2, fee_fields(nonce=2**64 - 2, gas=2**64 - 1, value=2**256 - 1)))
    assert (tx.nonce, tx.gas, tx.value) == (2**64 - 2, 2**64 - 1, 2**256 - 1)
    tx = decode(build_typed(2, fee_fields(tip=2**256 - 1, cap=2**256 - 1)))
    assert tx.max_fee_per_gas == tx.gas_price == 2**256 - 1


# --- intrinsic gas ----------------------------------------------------------------------


def test_intrinsic_gas_components() -> None:
    data = b"\x00\x01\x00\x02" + b"\xff" * 60  # 2 zero bytes, 62 non-zero: 64 bytes, 2 words
    call = decode(build_typed(2, fee_fields(data=data)))
    assert intrinsic_gas(call) == 21000 + 2 * 4 + 62 * 16
    create = decode(build_typed(2, fee_fields(to=b"", data=data)))
    assert intrinsic_gas(create) == 21000 + 32000 + 2 * 4 + 62 * 16 + 2 * 2
    access = [[b"\x01" * 20, [b"\x00" * 32, b"\x01" * 32]], [b"\x02" * 20, []]]
    with_list = decode(build_typed(1, access_list_fields(access_list=access)))
    assert intrinsic_gas(with_list) == 21000 + 2 * 2400 + 2 * 1900
    auths = [signed_auth(), signed_auth(nonce=1), signed_auth(chain_id=7)]
    set_code = decode(build_typed(4, set_code_fields(auth_list=auths)))
    assert intrinsic_gas(set_code) == 21000 + 3 * 25000
    assert floor_data_gas(call) == 21000 + 10 * (2 + 4 * 62)
    assert floor_data_gas(set_code) == 21000


# --- error cases ------------------------------------------------------------------------


def test_oversized() -> None:
    raw = build_typed(2, fee_fields(data=b"\x01" * MAX_TX_SIZE))
    assert invalid(raw) == "oversized data"
    assert invalid(b"\x02" + b"\x00" * MAX_TX_SIZE) == "oversized data"


def test_exactly_max_size_is_accepted() -> None:
    size = MAX_TX_SIZE - 200
    for _ in range(5):
        raw = build_typed(2, fee_fields(data=b"\x01" * size))
        if len(raw) == MAX_TX_SIZE:
            break
        size += MAX_TX_SIZE - len(raw)
    assert len(raw) == MAX_TX_SIZE
    assert decode(raw).sender == SENDER


def test_pre_eip155_legacy_is_refused() -> None:
    tx = {"nonce": 0, "gasPrice": 1, "gas": 21000, "to": to_checksum_address(TO), "value": 1}
    raw = bytes(Account.sign_transaction(tx, KEY).raw_transaction)
    assert rlp.decode(raw)[6] in (b"\x1b", b"\x1c")
    assert invalid(raw) == UNPROTECTED


@pytest.mark.parametrize("v", [0, 1, 2, 26, 29, 30, 34])
def test_legacy_v_below_eip155_range_is_bad_signature(v: int) -> None:
    raw = rlp.encode([*legacy_fields(), v, 1, 1])
    assert invalid(raw) == BAD_SIGNATURE


@pytest.mark.parametrize(
    "raw_for_chain",
    [
        lambda chain: build_legacy(legacy_fields(), chain_id=chain),
        lambda chain: build_typed(1, access_list_fields(chain_id=chain)),
        lambda chain: build_typed(2, fee_fields(chain_id=chain)),
        lambda chain: build_typed(4, set_code_fields(chain_id=chain)),
    ],
    ids=["legacy", "eip2930", "eip1559", "eip7702"],
)
@pytest.mark.parametrize("chain", [0, 1, CHAIN_ID + 1, 2**64])
def test_wrong_chain_id(raw_for_chain: Callable[[int], bytes], chain: int) -> None:
    assert invalid(raw_for_chain(chain)) == WRONG_CHAIN
    assert decode(raw_for_chain(CHAIN_ID)).sender == SENDER


@pytest.mark.parametrize("tx_type", [0x00, 0x03, 0x05, 0x7F])
def test_unsupported_types(tx_type: int) -> None:
    raw = bytes([tx_type]) + build_typed(2, fee_fields())[1:]
    assert invalid(raw) == NOT_SUPPORTED


def test_blob_transaction_is_refused() -> None:
    blob_fields = [*fee_fields(), 1, [b"\x01" + b"\x00" * 31]]  # max_fee_per_blob_gas, hashes
    assert invalid(build_typed(3, blob_fields)) == NOT_SUPPORTED


VALID_1559 = build_typed(2, fee_fields())
VALID_LEGACY = build_legacy(legacy_fields())
ENCODED_1559 = [rlp.encode(field) for field in fee_fields()]

MALFORMED: dict[str, bytes] = {
    "empty input": b"",
    "legacy string instead of list": b"\x80",
    "legacy long string": b"\xb8\x40" + b"\x00" * 64,
    "typed, no payload": b"\x02",
    "typed payload not a list": b"\x02\x83abc",
    "truncated legacy": VALID_LEGACY[:-1],
    "truncated typed": VALID_1559[:-1],
    "truncated in header": VALID_1559[:2],
    "trailing byte legacy": VALID_LEGACY + b"\x00",
    "trailing byte typed": VALID_1559 + b"\x00",
    "trailing list typed": VALID_1559 + b"\xc0",
    "list length too long": b"\x02\xf8\x80" + VALID_1559[3:],
    "long list prefix for short list": b"\x02\xf8\x05" + b"\x80" * 5,
    "length with leading zero": b"\x02\xf9\x00\x05" + b"\x80" * 5,
    "single byte as short string": assemble(
        b"\x02", [ENCODED_1559[0], b"\x81\x05", *ENCODED_1559[2:]]
    ),
    "legacy 8 fields": rlp.encode([*legacy_fields(), 37, 1]),
    "legacy 10 fields": rlp.encode([*legacy_fields(), 37, 1, 1, 1]),
    "1559 11 fields": with_signature(2, fee_fields()[:-1], 0, 1, 1),
    "1559 13 fields": with_signature(2, [*fee_fields(), []], 0, 1, 1),
    "2930 12 fields": with_signature(1, [*access_list_fields(), 0], 0, 1, 1),
    "7702 12 fields": with_signature(4, fee_fields(), 0, 1, 1),
    "nonce leading zero": build_typed(2, fee_fields(nonce=b"\x00\x01")),
    "nonce zero byte": build_typed(2, fee_fields(nonce=b"\x00")),
    "chain id leading zero": build_typed(2, fee_fields(chain_id=b"\x00\x12")),
    "gas leading zero": build_typed(2, fee_fields(gas=b"\x00\x52\x08")),
    "value leading zero": build_legacy(legacy_fields(value=b"\x00\x01")),
    "gas price leading zero": build_legacy(legacy_fields(gas_price=b"\x00\x01")),
    "r leading zero": with_signature(2, fee_fields(), 0, b"\x00\x01", 1),
    "y_parity zero byte": with_signature(2, fee_fields(), b"\x00", 1, 1),
    "gas 2^64": build_typed(2, fee_fields(gas=2**64)),
    "legacy gas 2^64": build_legacy(legacy_fields(gas=2**64)),
    "value 2^256": build_typed(2, fee_fields(value=2**256)),
    "max fee 2^256": build_typed(2, fee_fields(cap=2**256)),
    "tip 2^256": build_typed(2, fee_fields(tip=2**256)),
    "gas price 2^256": build_legacy(legacy_fields(gas_price=2**256)),
    "chain id 2^256": build_typed(2, fee_fields(chain_id=2**256)),
    "r 2^256": with_signature(2, fee_fields(), 0, 2**256, 1),
    "to 19 bytes": build_typed(2, fee_fields(to=b"\x11" * 19)),
    "to 21 bytes": build_legacy(legacy_fields(to=b"\x11" * 21)),
    "to is a list": build_typed(2, fee_fields(to=[TO])),
    "nonce is a list": build_typed(2, fee_fields(nonce=[])),
    "data is a list": build_typed(2, fee_fields(data=[b"\x01"])),
    "signature r is a list": with_signature(2, fee_fields(), 0, [], 1),
    "access list is a string": build_typed(2, fee_fields(access_list=b"")),
    "access entry is a string": build_typed(2, fee_fields(access_list=[b"\x01" * 20])),
    "access entry 1 field": build_typed(2, fee_fields(access_list=[[b"\x01" * 20]])),
    "access entry 3 fields": build_typed(2, fee_fields(access_list=[[b"\x01" * 20, [], []]])),
    "access address 19 bytes": build_typed(1, access_list_fields(access_list=[[b"\x01" * 19, []]])),
    "access keys not a list": build_typed(
        2, fee_fields(access_list=[[b"\x01" * 20, b"\x00" * 32]])
    ),
    "storage key 31 bytes": build_typed(
        2, fee_fields(access_list=[[b"\x01" * 20, [b"\x01" * 31]]])
    ),
    "storage key 33 bytes": build_typed(
        2, fee_fields(access_list=[[b"\x01" * 20, [b"\x01" * 33]]])
    ),
    "auth list is a string": build_typed(4, set_code_fields(auth_list=b"\x01")),
    "auth is a string": build_typed(4, set_code_fields(auth_list=[b"\x01"])),
    "auth 5 fields": build_typed(4, set_code_fields(auth_list=[signed_auth()[:5]])),
    "auth 7 fields": build_typed(4, set_code_fields(auth_list=[[*signed_auth(), 0]])),
    "auth address 19 bytes": build_typed(
        4, set_code_fields(auth_list=[[1, b"\x01" * 19, 0, 0, 1, 1]])
    ),
    "auth address empty": build_typed(4, set_code_fields(auth_list=[[1, b"", 0, 0, 1, 1]])),
    "auth nonce 2^64": build_typed(4, set_code_fields(auth_list=[[1, TO, 2**64, 0, 1, 1]])),
    "auth y_parity 256": build_typed(4, set_code_fields(auth_list=[[1, TO, 0, 256, 1, 1]])),
    "auth r 2^256": build_typed(4, set_code_fields(auth_list=[[1, TO, 0, 0, 2**256, 1]])),
    "auth chain id leading zero": build_typed(
        4, set_code_fields(auth_list=[[b"\x00\x01", TO, 0, 0, 1, 1]])
    ),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_rlp(raw: bytes) -> None:
    assert invalid(raw).startswith("rlp: ")


def test_deep_nesting_is_rejected_without_recursion() -> None:
    nested = b"\xc0"
    while len(nested) < MAX_TX_SIZE - 1000:
        nested = length_prefix(len(nested), 0xC0) + nested
    encoded = [*ENCODED_1559[:8], length_prefix(len(nested), 0xC0) + nested, b"\x80\x01\x01"]
    raw = assemble(b"\x02", encoded)
    assert len(raw) <= MAX_TX_SIZE
    assert invalid(raw).startswith("rlp: ")


@pytest.mark.parametrize(
    "nonce",
    [2**64 - 1, 2**64, 2**72, 2**255, b"\xff" * 40],
    ids=["max", "2^64", "2^72", "2^255", "40 bytes"],
)
def test_nonce_overflow(nonce: Field) -> None:
    assert invalid(build_typed(2, fee_fields(nonce=nonce))) == NONCE_MAX
    assert invalid(build_typed(1, access_list_fields(nonce=nonce))) == NONCE_MAX
    assert invalid(build_legacy(legacy_fields(nonce=nonce))) == NONCE_MAX


def high_s_twin(tx_type: int, fields: list[Field]) -> bytes:
    """Same signer, (1 - y, r, N - s): valid ECDSA but forbidden by EIP-2."""
    y_parity, r, s = sign(keccak256(bytes([tx_type]) + rlp.encode(fields)), KEY)
    return with_signature(tx_type, fields, 1 - y_parity, r, SECP256K1_N - s)


def legacy_high_s_twin() -> bytes:
    fields = legacy_fields()
    y_parity, r, s = sign(keccak256(rlp.encode([*fields, CHAIN_ID, 0, 0])), KEY)
    return rlp.encode([*fields, CHAIN_ID * 2 + 35 + 1 - y_parity, r, SECP256K1_N - s])


BAD_SIGNATURES: dict[str, bytes] = {
    "y_parity 2": with_signature(2, fee_fields(), 2, 1, 1),
    "y_parity 27": with_signature(2, fee_fields(), 27, 1, 1),
    "r zero": with_signature(2, fee_fields(), 0, 0, 1),
    "s zero": with_signature(2, fee_fields(), 0, 1, 0),
    "r = N": with_signature(2, fee_fields(), 0, SECP256K1_N, 1),
    "s = N": with_signature(2, fee_fields(), 0, 1, SECP256K1_N),
    "s = N/2 + 1": with_signature(2, fee_fields(), 0, 1, SECP256K1_HALF_N + 1),
    "r not on curve": with_signature(2, fee_fields(), 0, 5, 1),
    "high-s twin 1559": high_s_twin(2, fee_fields()),
    "high-s twin 2930": high_s_twin(1, access_list_fields()),
    "high-s twin 7702": high_s_twin(4, set_code_fields()),
    "high-s twin legacy": legacy_high_s_twin(),
    "legacy r zero": rlp.encode([*legacy_fields(), CHAIN_ID * 2 + 35, 0, 1]),
}


@pytest.mark.parametrize("raw", BAD_SIGNATURES.values(), ids=BAD_SIGNATURES.keys())
def test_bad_signature_values(raw: bytes) -> None:
    assert invalid(raw) == BAD_SIGNATURE


def test_high_s_twin_is_otherwise_a_valid_signature() -> None:
    """Guard for the EIP-2 test: the twin really recovers to the same signer."""
    from cybermiles.crypto.secp256k1 import recover_address

    fields = fee_fields()
    msg_hash = keccak256(b"\x02" + rlp.encode(fields))
    y_parity, r, s = sign(msg_hash, KEY)
    assert recover_address(msg_hash, 1 - y_parity, r, SECP256K1_N - s) == SENDER


def test_tampered_field_changes_sender_not_validity() -> None:
    raw = build_typed(2, fee_fields(value=1))
    tampered = with_signature(2, fee_fields(value=2), *rlp.decode(raw[1:])[-3:])
    assert decode(tampered).sender != SENDER


def test_set_code_empty_auth_list() -> None:
    assert invalid(build_typed(4, set_code_fields(auth_list=[]))) == EMPTY_AUTHS


def test_set_code_create() -> None:
    assert invalid(build_typed(4, set_code_fields(to=b""))) == SET_CODE_CREATE


def test_invalid_authorizations_do_not_invalidate_the_transaction() -> None:
    good = signed_auth(nonce=7)
    any_chain = signed_auth(chain_id=0, nonce=8)
    y_parity, r, s = good[3:]
    bad = {
        "other chain": signed_auth(chain_id=CHAIN_ID + 1),
        "nonce max": signed_auth(nonce=2**64 - 1),
        "y_parity 2": [*good[:3], 2, r, s],
        "y_parity 255": [*good[:3], 255, r, s],
        "r zero": [*good[:3], y_parity, 0, s],
        "s zero": [*good[:3], y_parity, r, 0],
        "r = N": [*good[:3], y_parity, SECP256K1_N, s],
        "high s": [*good[:3], 1 - y_parity, r, SECP256K1_N - s],
        "r not on curve": [*good[:3], y_parity, 5, s],
    }
    auth_list = [good, *bad.values(), any_chain]
    tx = decode(build_typed(4, set_code_fields(auth_list=auth_list)))
    assert tx.sender == SENDER
    authorities = [auth.authority for auth in tx.authorization_list]
    assert authorities == [SENDER, *[None] * len(bad), SENDER]
    assert tx.authorization_list[0].nonce == 7
    assert tx.authorization_list[0].address == b"\x22" * 20
    assert tx.authorization_list[-1].chain_id == 0
    assert intrinsic_gas(tx) == 21000 + 25000 * len(auth_list)


def test_authority_of_tampered_authorization_differs() -> None:
    auth = signed_auth(nonce=1)
    auth[2] = 2  # the signature was over nonce 1
    tx = decode(build_typed(4, set_code_fields(auth_list=[auth])))
    assert tx.authorization_list[0].authority not in (None, SENDER)


# --- fuzzing: nothing but InvalidTransaction may escape ---------------------------------


def decode_or_reject(raw: bytes) -> Transaction | None:
    """Decode; any exception other than InvalidTransaction fails the test."""
    try:
        tx = decode_transaction(raw, CHAIN_ID)
    except InvalidTransaction as exc:
        assert str(exc)
        return None
    assert tx.hash == keccak256(raw)
    return tx


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(raw: bytes) -> None:
    decode_or_reject(raw)


@FUZZ
@given(st.sampled_from([b"", b"\x01", b"\x02", b"\x03", b"\x04"]), st.binary(max_size=400))
def test_fuzz_type_byte_then_random_bytes(prefix: bytes, body: bytes) -> None:
    decode_or_reject(prefix + body)


rlp_trees = st.recursive(
    st.binary(max_size=40) | st.integers(0, 2**300),
    lambda children: st.lists(children, max_size=14),
    max_leaves=60,
)


@FUZZ
@given(st.sampled_from([b"", b"\x01", b"\x02", b"\x04"]), rlp_trees)
def test_fuzz_random_rlp_structures(prefix: bytes, tree: Any) -> None:
    decode_or_reject(prefix + rlp.encode(tree))


field_values = st.one_of(
    st.integers(0, 3),
    st.just(CHAIN_ID),
    st.integers(0, 2**264),
    st.binary(max_size=40),
    st.just(TO),
    st.lists(st.binary(max_size=33), max_size=3),
    st.lists(st.lists(st.binary(max_size=33), max_size=3), max_size=2),
)


@FUZZ
@given(
    st.sampled_from([(0, 9), (1, 11), (2, 12), (4, 13)]),
    st.lists(field_values, min_size=13, max_size=13),
    st.booleans(),
)
def test_fuzz_schema_shaped_fields(
    shape: tuple[int, int], values: list[Field], signed: bool
) -> None:
    """Right field count, random field values: reaches the semantic checks."""
    tx_type, count = shape
    if tx_type == 0:
        fields = values[:6]
        raw = build_legacy(fields) if signed else rlp.encode(values[:count])
    else:
        fields = values[: count - 3]
        raw = (
            build_typed(tx_type, fields)
            if signed
            else bytes([tx_type]) + rlp.encode(values[:count])
        )
    decode_or_reject(raw)


@st.composite
def mutated_transactions(draw: st.DrawFn) -> bytes:
    raw = bytearray(
        draw(
            st.sampled_from(
                [
                    VALID_LEGACY,
                    VALID_1559,
                    build_typed(1, access_list_fields(access_list=[[TO, [b"\x01" * 32]]])),
                    build_typed(4, set_code_fields()),
                ]
            )
        )
    )
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(raw) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip":
            raw[position] ^= draw(st.integers(1, 255))
        elif action == "insert":
            raw.insert(position, draw(st.integers(0, 255)))
        elif action == "delete" and len(raw) > 1:
            del raw[position]
        elif action == "truncate":
            del raw[position + 1 :]
    return bytes(raw)


def assert_agrees_with_py_evm(tx: Transaction) -> None:
    reference = PragueTransactionBuilder.decode(tx.raw)
    assert tx.sender == reference.sender
    assert (tx.nonce, tx.gas, tx.value, tx.data) == (
        reference.nonce,
        reference.gas,
        reference.value,
        reference.data,
    )


@FUZZ
@given(mutated_transactions())
def test_fuzz_mutated_transactions_agree_with_py_evm(raw: bytes) -> None:
    """Whatever we accept, py-evm must accept too, with the same sender and fields."""
    tx = decode_or_reject(raw)
    if tx is not None:
        assert_agrees_with_py_evm(tx)


@pytest.mark.parametrize("xor", [0x01, 0x80, 0xFF])
def test_every_single_byte_flip_is_rejected_or_agrees_with_py_evm(xor: int) -> None:
    accepted = 0
    for original in (VALID_LEGACY, VALID_1559, build_typed(4, set_code_fields())):
        for position in range(len(original)):
            raw = bytearray(original)
            raw[position] ^= xor
            tx = decode_or_reject(bytes(raw))
            if tx is not None:
                accepted += 1
                assert_agrees_with_py_evm(tx)
    assert accepted > 0  # flips inside e.g. ``to`` or ``r`` keep the tx well-formed
