"""Parsing JSON-RPC arguments with geth's hexutil rules.

Every helper takes the raw JSON value and the argument's name (the handler's parameter name)
and raises :class:`~cybermiles.rpc.errors.ParamError` naming it; the dispatcher adds the
argument's index to the message.

* quantity: ``"0x"`` + hex digits without leading zeros (``"0x0"`` is zero), at most 256 bits
  (:func:`uint64`: at most 64 bits).
* data: ``"0x"`` + an even number of hex digits. address: data of exactly 20 bytes (any letter
  case, checksums not verified, as geth). hash: data of exactly 32 bytes.
* storage slot: ``"0x"`` + up to 64 hex digits, leading zeros allowed, ``"0x"`` is slot 0
  (the spec's bytesMax32; geth's eth_getStorageAt).
* block (:func:`block_number_or_tag`): ``latest`` / ``pending`` / ``safe`` / ``finalized``
  name the head (BFT blocks are final once committed), ``earliest`` block 0, or a quantity.
  :func:`block_ref` also takes a 32-byte block hash and the EIP-1898 objects
  ``{"blockNumber": q}`` and ``{"blockHash": h, "requireCanonical": bool}``. A missing or
  null optional block argument means ``latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cybermiles.rpc.errors import ParamError

HEAD_TAGS = frozenset({"latest", "pending", "safe", "finalized"})
EARLIEST = "earliest"

_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block named by a request: the head (``tag``), a height, or a hash."""

    tag: str | None = None
    number: int | None = None
    hash: bytes | None = None
    require_canonical: bool = False

    @property
    def is_head(self) -> bool:
        return self.tag is not None


LATEST = BlockRef(tag="latest")


def _hex_text(value: Any, name: str) -> str:
    """The digits after ``0x`` (possibly empty), checked to be hexadecimal."""
    if not isinstance(value, str):
        raise ParamError(name, f"expected a 0x-prefixed hex string, got {_json_type(value)}")
    if not value:
        raise ParamError(name, "empty hex string")
    if value[:2] not in ("0x", "0X"):
        raise ParamError(name, "hex string without 0x prefix")
    digits = value[2:]
    if not _HEX_DIGITS.fullmatch(digits):
        raise ParamError(name, "invalid hex string")
    return digits


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def quantity(value: Any, name: str, bits: int = 256) -> int:
    digits = _hex_text(value, name)
    if not digits:
        raise ParamError(name, 'hex string "0x"')
    if len(digits) > 1 and digits[0] == "0":
        raise ParamError(name, "hex number with leading zero digits")
    number = int(digits, 16)
    if number.bit_length() > bits:
        raise ParamError(name, f"hex number > {bits} bits")
    return number


def uint64(value: Any, name: str) -> int:
    return quantity(value, name, 64)


def data(value: Any, name: str) -> bytes:
    digits = _hex_text(value, name)
    if len(digits) % 2:
        raise ParamError(name, "hex string of odd length")
    return bytes.fromhex(digits)


def fixed_bytes(value: Any, name: str, size: int, what: str) -> bytes:
    digits = _hex_text(value, name)
    if len(digits) != size * 2:
        raise ParamError(name, f"hex string has length {len(digits)}, want {size * 2} for {what}")
    return bytes.fromhex(digits)


def address(value: Any, name: str) -> bytes:
    return fixed_bytes(value, name, 20, "an address")


def hash32(value: Any, name: str) -> bytes:
    return fixed_bytes(value, name, 32, "a hash")


def storage_slot(value: Any, name: str) -> int:
    digits = _hex_text(value, name)
    if len(digits) > 64:
        raise ParamError(name, f"hex string has length {len(digits)}, want at most 64")
    return int(digits or "0", 16)


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ParamError(name, f"expected true or false, got {_json_type(value)}")
    return value


def block_number_or_tag(value: Any, name: str) -> BlockRef:
    """A tag or a height (eth_getBlockByNumber and friends); null means ``latest``."""
    if value is None:
        return LATEST
    if isinstance(value, str):
        tag = value.strip()
        if tag in HEAD_TAGS:
            return BlockRef(tag=tag)
        if tag == EARLIEST:
            return BlockRef(number=0)
        if value[:2] not in ("0x", "0X"):
            raise ParamError(
                name,
                f"expected a block number or one of latest, pending, safe, finalized, "
                f"earliest; got {_shown(value)}",
            )
    return BlockRef(number=uint64(value, name))


def block_ref(value: Any, name: str) -> BlockRef:
    """A tag, height, block hash or EIP-1898 object; null means ``latest``."""
    if isinstance(value, str) and len(value) == 66:
        return BlockRef(hash=hash32(value, name))
    if isinstance(value, dict):
        return _eip1898(value, name)
    return block_number_or_tag(value, name)


def _eip1898(value: dict[str, Any], name: str) -> BlockRef:
    unknown = set(value) - {"blockNumber", "blockHash", "requireCanonical"}
    if unknown:
        raise ParamError(name, f"unknown field {sorted(unknown)[0]!r} in block object")
    has_number, has_hash = "blockNumber" in value, "blockHash" in value
    if has_number and has_hash:
        raise ParamError(name, "cannot specify both blockHash and blockNumber, choose one")
    if has_hash:
        canonical = value.get("requireCanonical", False)
        return BlockRef(
            hash=hash32(value["blockHash"], f"{name}.blockHash"),
            require_canonical=boolean(canonical, f"{name}.requireCanonical"),
        )
    if has_number:
        if "requireCanonical" in value:
            raise ParamError(name, "requireCanonical is only allowed with blockHash")
        if value["blockNumber"] is None:
            raise ParamError(f"{name}.blockNumber", "expected a block number or tag, got null")
        return block_number_or_tag(value["blockNumber"], f"{name}.blockNumber")
    raise ParamError(name, "block object needs blockNumber or blockHash")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")
