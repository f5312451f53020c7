"""secp256k1 signing/recovery and address helpers, checked against eth_keys and known vectors.

Also covers ``cybermiles.crypto.address`` (CREATE/CREATE2 vectors, EIP-55, parsing).
"""

from __future__ import annotations

import pytest
from eth._utils.address import generate_contract_address
from eth_account import Account
from eth_keys import keys
from eth_keys.constants import SECPK1_N
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermiles.crypto.address import create2_address, create_address, parse_address, to_checksum
from cybermiles.crypto.keccak import keccak256
from cybermiles.crypto.secp256k1 import (
    SECP256K1_HALF_N,
    SECP256K1_N,
    private_key_to_address,
    recover_address,
    sign,
)

private_keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
hashes = st.binary(min_size=32, max_size=32)

KEY_ONE = (1).to_bytes(32, "big")
ADDRESS_OF_KEY_ONE = bytes.fromhex("7e5f4552091a69125d5dfcb7b8c2659029395bdf")


# --- secp256k1 --------------------------------------------------------------------------


def test_constants() -> None:
    assert SECP256K1_N == SECPK1_N
    assert SECP256K1_HALF_N == SECP256K1_N // 2


def test_private_key_one_has_known_address() -> None:
    assert private_key_to_address(KEY_ONE) == ADDRESS_OF_KEY_ONE


@settings(max_examples=200, deadline=None)
@given(private_keys, hashes)
def test_sign_and_recover_match_eth_keys(private_key: bytes, msg_hash: bytes) -> None:
    y_parity, r, s = sign(msg_hash, private_key)
    reference = keys.PrivateKey(private_key).sign_msg_hash(msg_hash)
    assert (y_parity, r, s) == reference.vrs  # RFC 6979: deterministic and low-s
    assert 0 < s <= SECP256K1_HALF_N
    address = private_key_to_address(private_key)
    assert address == keys.PrivateKey(private_key).public_key.to_canonical_address()
    assert address == bytes.fromhex(Account.from_key(private_key).address[2:])
    assert recover_address(msg_hash, y_parity, r, s) == address


@settings(max_examples=50, deadline=None)
@given(private_keys, hashes)
def test_high_s_twin_recovers_same_address(private_key: bytes, msg_hash: bytes) -> None:
    """recover_address itself does not enforce EIP-2; (r, N - s, 1 - v) is the same signer."""
    y_parity, r, s = sign(msg_hash, private_key)
    twin = recover_address(msg_hash, 1 - y_parity, r, SECP256K1_N - s)
    assert twin == private_key_to_address(private_key)


@pytest.mark.parametrize(
    ("y_parity", "r", "s"),
    [
        (2, 1, 1),
        (-1, 1, 1),
        (0, 0, 1),
        (0, 1, 0),
        (0, SECP256K1_N, 1),
        (0, 1, SECP256K1_N),
        (0, 2**256, 1),
        (0, -5, 1),
    ],
)
def test_recover_rejects_out_of_range_values(y_parity: int, r: int, s: int) -> None:
    with pytest.raises(ValueError):
        recover_address(b"\x11" * 32, y_parity, r, s)


def test_recover_rejects_r_that_is_not_an_x_coordinate() -> None:
    # x = 5 has no point on secp256k1 (5**3 + 7 = 132 is not a square mod p).
    with pytest.raises(ValueError):
        recover_address(b"\x11" * 32, 0, 5, 1)


def test_recover_rejects_bad_hash_length() -> None:
    with pytest.raises(ValueError):
        recover_address(b"\x11" * 31, 0, 1, 1)
    with pytest.raises(ValueError):
        sign(b"\x11" * 33, KEY_ONE)


def test_recover_with_other_hash_gives_other_address() -> None:
    y_parity, r, s = sign(b"\x01" * 32, KEY_ONE)
    assert recover_address(b"\x02" * 32, y_parity, r, s) != ADDRESS_OF_KEY_ONE


# --- addresses --------------------------------------------------------------------------

SENDER = bytes.fromhex("6ac7ea33f8831ea9dcc53393aaa88b25a785dbf0")


@pytest.mark.parametrize(
    ("nonce", "expected"),
    [
        (0, "cd234a471b72ba2f1ccf0a70fcaba648a5eecd8d"),
        (1, "343c43a37d37dff08ae8c4a11544c718abb4fcf8"),
        (2, "f778b86fa74e846c4f0a1fbd1335fe81c00a0c91"),
        (3, "fffd933a0bc612844eaf0c6fe3e5b8e9b6c1d19c"),
    ],
)
def test_create_address_vectors(nonce: int, expected: str) -> None:
    assert create_address(SENDER, nonce) == bytes.fromhex(expected)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=20, max_size=20), st.integers(0, 2**64 - 1))
def test_create_address_matches_py_evm(sender: bytes, nonce: int) -> None:
    assert create_address(sender, nonce) == generate_contract_address(sender, nonce)


# EIP-1014 examples.
@pytest.mark.parametrize(
    ("sender", "salt", "init_code", "expected"),
    [
        ("00" * 20, "00" * 32, "00", "4d1a2e2bb4f88f0250f26ffff098b0b30b26bf38"),
        (
            "deadbeef00000000000000000000000000000000",
            "00" * 32,
            "00",
            "b928f69bb1d91cd65274e3c79d8986362984fda3",
        ),
        (
            "deadbeef00000000000000000000000000000000",
            "000000000000000000000000feed000000000000000000000000000000000000",
            "00",
            "d04116cdd17bebe565eb2422f2497e06cc1c9833",
        ),
        ("00" * 20, "00" * 32, "deadbeef", "70f2b2914a2a4b783faefb75f459a580616fcb5e"),
        (
            "00000000000000000000000000000000deadbeef",
            "00000000000000000000000000000000000000000000000000000000cafebabe",
            "deadbeef",
            "60f3f640a8508fc6a86d45df051962668e1e8ac7",
        ),
        (
            "00000000000000000000000000000000deadbeef",
            "00000000000000000000000000000000000000000000000000000000cafebabe",
            "deadbeef" * 11,
            "1d8bfdc5d46dc4f61d6b6115972536ebe6a8854c",
        ),
        ("00" * 20, "00" * 32, "", "e33c0c7f7df4809055c3eba6c09cfe4baf1bd9e0"),
    ],
)
def test_create2_address_vectors(sender: str, salt: str, init_code: str, expected: str) -> None:
    address = create2_address(bytes.fromhex(sender), bytes.fromhex(salt), bytes.fromhex(init_code))
    assert address == bytes.fromhex(expected)


def test_create_address_input_checks() -> None:
    with pytest.raises(ValueError, match="20 bytes"):
        create_address(b"\x00" * 19, 0)
    with pytest.raises(ValueError, match="non-negative"):
        create_address(SENDER, -1)
    with pytest.raises(ValueError, match="32 bytes"):
        create2_address(SENDER, b"\x00" * 31, b"")


# EIP-55 examples.
@pytest.mark.parametrize(
    "checksummed",
    [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ],
)
def test_checksum_and_parse_round_trip(checksummed: str) -> None:
    raw = parse_address(checksummed)
    assert len(raw) == 20
    assert to_checksum(raw) == checksummed
    assert parse_address(checksummed.lower()) == raw
    assert parse_address("0x" + checksummed[2:].upper()) == raw
    assert parse_address("0X" + checksummed[2:]) == raw


def test_keccak_address_of_public_key() -> None:
    public = keys.PrivateKey(KEY_ONE).public_key.to_bytes()
    assert keccak256(public)[12:] == ADDRESS_OF_KEY_ONE


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0x",
        "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",  # no prefix
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",  # 39 digits
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed0",  # 41 digits
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg",  # not hex
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\n",  # trailing newline
        " 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0x5a Aeb6053F3E94C9b9A09f33669435E7Ef1BeAe",  # space (bytes.fromhex would allow)
        "0x" + "٣" * 40,  # non-ASCII digits
    ],
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid address"):
        parse_address(text)


def test_parse_address_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="hex string"):
        parse_address(b"\x00" * 20)  # type: ignore[arg-type]


def test_to_checksum_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match="20 bytes"):
        to_checksum(b"\x00" * 21)
