"""Signed Ethereum transactions: decoding, validation and sender recovery.

Supported envelopes: legacy (EIP-155 replay-protected only), EIP-2930 (type 1),
EIP-1559 (type 2) and EIP-7702 (type 4). Blob transactions (type 3) are refused.

Decoding rules (:func:`decode_transaction`; every failure is :class:`InvalidTransaction`,
messages use geth's wording):

* ``len(raw) > MAX_TX_SIZE`` → "oversized data".
* First byte ``>= 0xc0``: legacy RLP list of 9 fields, which must be EIP-155 signed for the
  node's chain (``v = chain_id * 2 + 35/36``). ``v`` 27/28 → "only replay-protected (EIP-155)
  transactions allowed over RPC"; another chain → "invalid chain id for signer".
* First byte 0x01 / 0x02 / 0x04: typed envelope ``type || rlp(fields)``; any other type
  (including 0x03 blobs) → "transaction type not supported". A typed ``chain_id`` other
  than the node's → "invalid chain id for signer".
* RLP must be canonical and exact: no trailing bytes, the right number of fields,
  integers without leading zeros, ``to`` empty or 20 bytes, access-list addresses 20 bytes
  and storage keys 32 bytes. Problems → messages starting "rlp: ".
* Ranges: ``nonce < 2**64 - 1`` (EIP-2681, "nonce exceeds 2^64-1"), ``gas < 2**64``, all
  other integers ``< 2**256``.
* Signature: ``y_parity`` in {0, 1}, ``0 < r < N``, ``0 < s <= N/2`` (EIP-2) and a
  recoverable public key, else "invalid transaction v, r, s values".
* EIP-7702: non-empty authorization list ("EIP-7702 transaction with empty auth list") and
  a ``to`` address ("EIP-7702 transaction cannot be used to create contract"). A bad
  *authorization* never invalidates the transaction: its ``authority`` is None and
  execution skips it.
* ``hash = keccak256(raw)`` (typed: including the type byte); ``raw`` is kept as given.
* Field conventions: ``v`` is the signature value as encoded (legacy: ``chain_id * 2 + 35 +
  y_parity``; typed: ``y_parity``); legacy and EIP-2930 set both EIP-1559 fee fields to
  ``gas_price``; EIP-1559/7702 set ``gas_price = max_fee_per_gas``.
* ``Authorization.authority`` is None when the tuple can never apply on this chain: its
  chain id is neither 0 nor ours, its nonce is ``>= 2**64 - 1``, or its signature is
  invalid (``y_parity`` not 0/1, ``r``/``s`` out of range, high ``s``, unrecoverable).
  Execution still checks the authority's nonce and code against state.

Speed: the signing payload is not re-encoded. The unsigned fields are a contiguous run of
bytes inside ``raw``, so the payload is ``[type ||] new list header || that run [|| rlp(
chain_id) 0x80 0x80 for legacy]``. Fields are located with ``rlp.codec.consume_length_prefix``
against a fixed schema; this is about twice as fast as ``rlp.decode`` + ``rlp.encode`` and,
unlike pyrlp's recursive decoder, cannot hit RecursionError on deeply nested garbage.

Gas rules (:func:`intrinsic_gas`, :func:`floor_data_gas`, Prague): see their docstrings.
Callers reject ``tx.gas < max(intrinsic_gas(tx), floor_data_gas(tx))`` with
"intrinsic gas too low"; decoding does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import rlp
from rlp.codec import consume_length_prefix, length_prefix

from cybermiles.chain.errors import InvalidTransaction
from cybermiles.crypto.keccak import keccak256
from cybermiles.crypto.secp256k1 import SECP256K1_HALF_N, SECP256K1_N, recover_address

MAX_TX_SIZE = 128 * 1024

LEGACY_TX_TYPE = 0
ACCESS_LIST_TX_TYPE = 1
DYNAMIC_FEE_TX_TYPE = 2
SET_CODE_TX_TYPE = 4

AccessList = tuple[tuple[bytes, tuple[int, ...]], ...]


@dataclass(frozen=True, slots=True)
class Authorization:
    """One EIP-7702 authorization tuple; ``authority`` is recovered (None if invalid)."""

    chain_id: int
    address: bytes
    nonce: int
    y_parity: int
    r: int
    s: int
    authority: bytes | None


@dataclass(frozen=True, slots=True)
class Transaction:
    """A decoded, signature-checked transaction with its sender recovered once.

    ``max_fee_per_gas`` and ``max_priority_fee_per_gas`` both equal ``gas_price`` for
    legacy and EIP-2930 transactions, so fee rules can treat every type alike.
    """

    type: int
    chain_id: int
    nonce: int
    gas_price: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas: int
    to: bytes | None
    value: int
    data: bytes
    access_list: AccessList
    authorization_list: tuple[Authorization, ...]
    v: int
    r: int
    s: int
    sender: bytes
    hash: bytes
    raw: bytes

    @property
    def is_create(self) -> bool:
        return self.to is None


# --- gas schedule (Prague) ---------------------------------------------------------------

TX_GAS = 21_000
TX_CREATE_GAS = 32_000
TX_DATA_ZERO_GAS = 4
TX_DATA_NON_ZERO_GAS = 16
INITCODE_WORD_GAS = 2  # EIP-3860
ACCESS_LIST_ADDRESS_GAS = 2_400  # EIP-2930
ACCESS_LIST_STORAGE_KEY_GAS = 1_900  # EIP-2930
PER_EMPTY_ACCOUNT_COST = 25_000  # EIP-7702, charged per authorization up front
STANDARD_TOKEN_COST = 4  # EIP-7623: a non-zero calldata byte is 4 tokens, a zero byte 1
TOTAL_COST_FLOOR_PER_TOKEN = 10  # EIP-7623

MAX_NONCE = 2**64 - 1  # EIP-2681: a nonce must be strictly below this

ERR_OVERSIZED = "oversized data"
ERR_UNPROTECTED = "only replay-protected (EIP-155) transactions allowed over RPC"
ERR_CHAIN_ID = "invalid chain id for signer"
ERR_TX_TYPE = "transaction type not supported"
ERR_SIGNATURE = "invalid transaction v, r, s values"
ERR_NONCE_MAX = "nonce exceeds 2^64-1"
ERR_EMPTY_AUTH_LIST = "EIP-7702 transaction with empty auth list"
ERR_SET_CODE_CREATE = "EIP-7702 transaction cannot be used to create contract"

_SET_CODE_AUTH_MAGIC = b"\x05"

# One RLP item located inside ``raw``: (item start incl. prefix, payload start, payload end,
# is a list).
_Item = tuple[int, int, int, bool]


# --- RLP slicing ------------------------------------------------------------------------


def _rlp_error(detail: str) -> InvalidTransaction:
    return InvalidTransaction(f"rlp: {detail}")


def _items(raw: bytes, start: int, end: int) -> list[_Item]:
    """The items of the list whose payload is ``raw[start:end]`` (one level, no recursion)."""
    items: list[_Item] = []
    pos = start
    try:
        while pos < end:
            _, kind, length, payload = consume_length_prefix(raw, pos)
            stop = payload + length
            if stop > end:
                raise _rlp_error("value size exceeds available input length")
            items.append((pos, payload, stop, kind is list))
            pos = stop
    except rlp.DecodingError as exc:
        raise _rlp_error(str(exc)) from None
    except IndexError:
        raise _rlp_error("unexpected end of input") from None
    return items


def _envelope(raw: bytes, start: int, count: int, name: str) -> list[_Item]:
    """The fields of the outer list at ``raw[start:]``; it must fill ``raw`` exactly."""
    outer = _items(raw, start, len(raw))  # the outer list followed by nothing
    if not outer:
        raise _rlp_error(f"no payload for {name}")
    if len(outer) != 1:
        raise _rlp_error(f"input contains more than one value ({name})")
    if not outer[0][3]:
        raise _rlp_error(f"expected input list for {name}")
    fields = _items(raw, outer[0][1], outer[0][2])
    if len(fields) != count:
        raise _rlp_error(f"expected {count} fields for {name}, got {len(fields)}")
    return fields


def _list(raw: bytes, item: _Item, name: str) -> list[_Item]:
    if not item[3]:
        raise _rlp_error(f"expected input list for {name}")
    return _items(raw, item[1], item[2])


def _bytes(raw: bytes, item: _Item, name: str) -> bytes:
    if item[3]:
        raise _rlp_error(f"expected input string or bytes for {name}")
    return raw[item[1] : item[2]]


def _uint(raw: bytes, item: _Item, name: str, max_bytes: int = 32) -> int:
    """A canonical big-endian unsigned integer of at most ``max_bytes`` bytes."""
    if item[3]:
        raise _rlp_error(f"expected input string or bytes for {name}")
    data = raw[item[1] : item[2]]
    if len(data) > max_bytes:
        raise _rlp_error(f"input string too long for uint{max_bytes * 8} ({name})")
    if data[:1] == b"\x00":
        raise _rlp_error(f"non-canonical integer (leading zero bytes) for {name}")
    return int.from_bytes(data, "big")


def _nonce(raw: bytes, item: _Item) -> int:
    data = _bytes(raw, item, "nonce")
    if data[:1] == b"\x00":
        raise _rlp_error("non-canonical integer (leading zero bytes) for nonce")
    if len(data) > 8:
        raise InvalidTransaction(ERR_NONCE_MAX)
    nonce = int.from_bytes(data, "big")
    if nonce >= MAX_NONCE:
        raise InvalidTransaction(ERR_NONCE_MAX)
    return nonce


def _address(raw: bytes, item: _Item, name: str) -> bytes:
    data = _bytes(raw, item, name)
    if len(data) != 20:
        raise _rlp_error(f"invalid address length {len(data)} for {name}")
    return data


def _to(raw: bytes, item: _Item) -> bytes | None:
    data = _bytes(raw, item, "to")
    if not data:
        return None
    if len(data) != 20:
        raise _rlp_error(f"invalid address length {len(data)} for to")
    return data


def _storage_key(raw: bytes, item: _Item) -> int:
    data = _bytes(raw, item, "storage key")
    if len(data) != 32:
        raise _rlp_error(f"invalid storage key length {len(data)}")
    return int.from_bytes(data, "big")


def _access_list(raw: bytes, item: _Item) -> AccessList:
    entries = []
    for entry in _list(raw, item, "access list"):
        fields = _list(raw, entry, "access list entry")
        if len(fields) != 2:
            raise _rlp_error(f"expected 2 fields for access list entry, got {len(fields)}")
        address = _address(raw, fields[0], "access list address")
        keys = _list(raw, fields[1], "storage keys")
        entries.append((address, tuple(_storage_key(raw, key) for key in keys)))
    return tuple(entries)


# --- signatures -------------------------------------------------------------------------


def _signing_hash(prefix: bytes, raw: bytes, first: _Item, last: _Item, suffix: bytes) -> bytes:
    """keccak(prefix || list header || raw[first..last] || suffix) without re-encoding."""
    body = raw[first[0] : last[2]]
    header = length_prefix(len(body) + len(suffix), 0xC0)
    return keccak256(prefix + header + body + suffix)


@lru_cache(maxsize=16)
def _eip155_suffix(chain_id: int) -> bytes:
    return rlp.encode(chain_id) + b"\x80\x80"


def _signature_ok(y_parity: int, r: int, s: int) -> bool:
    return y_parity in (0, 1) and 0 < r < SECP256K1_N and 0 < s <= SECP256K1_HALF_N


def _sender(msg_hash: bytes, y_parity: int, r: int, s: int) -> bytes:
    if not _signature_ok(y_parity, r, s):
        raise InvalidTransaction(ERR_SIGNATURE)
    try:
        return recover_address(msg_hash, y_parity, r, s)
    except ValueError:
        raise InvalidTransaction(ERR_SIGNATURE) from None


def _signature_fields(raw: bytes, fields: list[_Item], v_name: str) -> tuple[int, int, int]:
    return (
        _uint(raw, fields[-3], v_name),
        _uint(raw, fields[-2], "r"),
        _uint(raw, fields[-1], "s"),
    )


# --- EIP-7702 authorizations ------------------------------------------------------------

# A decoded but not yet recovered authorization: its six values and its three-field run.
_RawAuthorization = tuple[int, bytes, int, int, int, int, _Item, _Item]


def _raw_authorizations(raw: bytes, item: _Item) -> list[_RawAuthorization]:
    result = []
    for entry in _list(raw, item, "authorization list"):
        f = _list(raw, entry, "authorization")
        if len(f) != 6:
            raise _rlp_error(f"expected 6 fields for authorization, got {len(f)}")
        result.append(
            (
                _uint(raw, f[0], "authorization chain id"),
                _address(raw, f[1], "authorization address"),
                _uint(raw, f[2], "authorization nonce", 8),
                _uint(raw, f[3], "authorization y_parity", 1),
                _uint(raw, f[4], "authorization r"),
                _uint(raw, f[5], "authorization s"),
                f[0],
                f[2],
            )
        )
    return result


def _authority(raw: bytes, auth: _RawAuthorization, chain_id: int) -> bytes | None:
    """The signer of an authorization, or None if it can never apply on this chain."""
    auth_chain_id, _, nonce, y_parity, r, s, first, last = auth
    if auth_chain_id not in (0, chain_id) or nonce >= MAX_NONCE:
        return None
    if not _signature_ok(y_parity, r, s):
        return None
    msg_hash = _signing_hash(_SET_CODE_AUTH_MAGIC, raw, first, last, b"")
    try:
        return recover_address(msg_hash, y_parity, r, s)
    except ValueError:
        return None


def _authorizations(
    raw: bytes, auths: list[_RawAuthorization], chain_id: int
) -> tuple[Authorization, ...]:
    return tuple(
        Authorization(
            chain_id=a[0],
            address=a[1],
            nonce=a[2],
            y_parity=a[3],
            r=a[4],
            s=a[5],
            authority=_authority(raw, a, chain_id),
        )
        for a in auths
    )


# --- envelopes --------------------------------------------------------------------------


def _legacy_chain_id(v: int) -> tuple[int, int]:
    """(chain id, y_parity) from an EIP-155 ``v``."""
    if v in (27, 28):
        raise InvalidTransaction(ERR_UNPROTECTED)
    if v < 35:
        raise InvalidTransaction(ERR_SIGNATURE)
    return (v - 35) >> 1, (v - 35) & 1


def _decode_legacy(raw: bytes, chain_id: int, known_sender: bytes | None) -> Transaction:
    f = _envelope(raw, 0, 9, "legacy transaction")
    nonce = _nonce(raw, f[0])
    gas_price = _uint(raw, f[1], "gas price")
    gas = _uint(raw, f[2], "gas", 8)
    to = _to(raw, f[3])
    value = _uint(raw, f[4], "value")
    data = _bytes(raw, f[5], "data")
    v, r, s = _signature_fields(raw, f, "v")
    tx_chain_id, y_parity = _legacy_chain_id(v)
    if tx_chain_id != chain_id:
        raise InvalidTransaction(ERR_CHAIN_ID)
    msg_hash = _signing_hash(b"", raw, f[0], f[5], _eip155_suffix(chain_id))
    return Transaction(
        type=LEGACY_TX_TYPE,
        chain_id=chain_id,
        nonce=nonce,
        gas_price=gas_price,
        max_priority_fee_per_gas=gas_price,
        max_fee_per_gas=gas_price,
        gas=gas,
        to=to,
        value=value,
        data=data,
        access_list=(),
        authorization_list=(),
        v=v,
        r=r,
        s=s,
        sender=known_sender or _sender(msg_hash, y_parity, r, s),
        hash=keccak256(raw),
        raw=raw,
    )


def _check_chain_id(raw: bytes, item: _Item, chain_id: int) -> None:
    if _uint(raw, item, "chain id") != chain_id:
        raise InvalidTransaction(ERR_CHAIN_ID)


def _decode_access_list_tx(raw: bytes, chain_id: int, known_sender: bytes | None) -> Transaction:
    f = _envelope(raw, 1, 11, "EIP-2930 transaction")
    nonce = _nonce(raw, f[1])
    gas_price = _uint(raw, f[2], "gas price")
    gas = _uint(raw, f[3], "gas", 8)
    to = _to(raw, f[4])
    value = _uint(raw, f[5], "value")
    data = _bytes(raw, f[6], "data")
    access_list = _access_list(raw, f[7])
    y_parity, r, s = _signature_fields(raw, f, "y_parity")
    _check_chain_id(raw, f[0], chain_id)
    msg_hash = _signing_hash(raw[:1], raw, f[0], f[7], b"")
    return Transaction(
        type=ACCESS_LIST_TX_TYPE,
        chain_id=chain_id,
        nonce=nonce,
        gas_price=gas_price,
        max_priority_fee_per_gas=gas_price,
        max_fee_per_gas=gas_price,
        gas=gas,
        to=to,
        value=value,
        data=data,
        access_list=access_list,
        authorization_list=(),
        v=y_parity,
        r=r,
        s=s,
        sender=known_sender or _sender(msg_hash, y_parity, r, s),
        hash=keccak256(raw),
        raw=raw,
    )


def _decode_fee_market_tx(
    raw: bytes, chain_id: int, tx_type: int, known_sender: bytes | None
) -> Transaction:
    """EIP-1559 and EIP-7702 share their first nine fields; 7702 adds the auth list."""
    set_code = tx_type == SET_CODE_TX_TYPE
    if set_code:
        f = _envelope(raw, 1, 13, "EIP-7702 transaction")
    else:
        f = _envelope(raw, 1, 12, "EIP-1559 transaction")
    nonce = _nonce(raw, f[1])
    max_priority_fee_per_gas = _uint(raw, f[2], "max priority fee per gas")
    max_fee_per_gas = _uint(raw, f[3], "max fee per gas")
    gas = _uint(raw, f[4], "gas", 8)
    to = _to(raw, f[5])
    value = _uint(raw, f[6], "value")
    data = _bytes(raw, f[7], "data")
    access_list = _access_list(raw, f[8])
    raw_auths = _raw_authorizations(raw, f[9]) if set_code else []
    y_parity, r, s = _signature_fields(raw, f, "y_parity")
    if set_code and not raw_auths:
        raise InvalidTransaction(ERR_EMPTY_AUTH_LIST)
    if set_code and to is None:
        raise InvalidTransaction(ERR_SET_CODE_CREATE)
    _check_chain_id(raw, f[0], chain_id)
    msg_hash = _signing_hash(raw[:1], raw, f[0], f[-4], b"")
    # the sender first, before the costly authority recoveries
    sender = known_sender or _sender(msg_hash, y_parity, r, s)
    return Transaction(
        type=tx_type,
        chain_id=chain_id,
        nonce=nonce,
        gas_price=max_fee_per_gas,
        max_priority_fee_per_gas=max_priority_fee_per_gas,
        max_fee_per_gas=max_fee_per_gas,
        gas=gas,
        to=to,
        value=value,
        data=data,
        access_list=access_list,
        authorization_list=_authorizations(raw, raw_auths, chain_id) if raw_auths else (),
        v=y_parity,
        r=r,
        s=s,
        sender=sender,
        hash=keccak256(raw),
        raw=raw,
    )


def decode_transaction(
    raw: bytes, chain_id: int, *, known_sender: bytes | None = None
) -> Transaction:
    """Decode, validate and recover the sender of a signed transaction for ``chain_id``.

    Raises :class:`InvalidTransaction` (and nothing else) for any input bytes; see the
    module docstring for the rules. ``known_sender`` skips the recovery: pass it only for
    transactions read back from our own block store, whose sender was recovered at admission.
    """
    if type(raw) is not bytes:  # bytearray, memoryview, HexBytes: keep a plain copy
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise TypeError(f"raw transaction must be bytes, not {type(raw).__name__}")
        raw = bytes(raw)
    if len(raw) > MAX_TX_SIZE:
        raise InvalidTransaction(ERR_OVERSIZED)
    if not raw:
        raise _rlp_error("empty transaction")
    first = raw[0]
    if first >= 0xC0:
        return _decode_legacy(raw, chain_id, known_sender)
    if first >= 0x80:
        raise _rlp_error("expected input list for legacy transaction")
    if first == ACCESS_LIST_TX_TYPE:
        return _decode_access_list_tx(raw, chain_id, known_sender)
    if first in (DYNAMIC_FEE_TX_TYPE, SET_CODE_TX_TYPE):
        return _decode_fee_market_tx(raw, chain_id, first, known_sender)
    raise InvalidTransaction(ERR_TX_TYPE)


# --- intrinsic gas ----------------------------------------------------------------------


def _zero_and_non_zero(data: bytes) -> tuple[int, int]:
    zeros = data.count(0)
    return zeros, len(data) - zeros


def intrinsic_gas(tx: Transaction) -> int:
    """Gas charged before execution (Prague).

    21000, +32000 and +2 per 32-byte initcode word (EIP-3860) for creates, +4 per zero and
    +16 per non-zero calldata byte, +2400 per access-list address and +1900 per storage
    key (EIP-2930), +25000 per EIP-7702 authorization. Does not include the EIP-7623
    floor: see :func:`floor_data_gas`.
    """
    zeros, non_zeros = _zero_and_non_zero(tx.data)
    gas = TX_GAS + zeros * TX_DATA_ZERO_GAS + non_zeros * TX_DATA_NON_ZERO_GAS
    if tx.to is None:
        gas += TX_CREATE_GAS + INITCODE_WORD_GAS * ((len(tx.data) + 31) // 32)
    gas += ACCESS_LIST_ADDRESS_GAS * len(tx.access_list)
    gas += ACCESS_LIST_STORAGE_KEY_GAS * sum(len(keys) for _, keys in tx.access_list)
    gas += PER_EMPTY_ACCOUNT_COST * len(tx.authorization_list)
    return gas


def floor_data_gas(tx: Transaction) -> int:
    """EIP-7623 minimum gas: 21000 + 10 * tokens, tokens = zero bytes + 4 * non-zero bytes."""
    zeros, non_zeros = _zero_and_non_zero(tx.data)
    tokens = zeros + STANDARD_TOKEN_COST * non_zeros
    return TX_GAS + TOTAL_COST_FLOOR_PER_TOKEN * tokens
