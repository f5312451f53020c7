"""Module records: frozen dataclasses stored as the RLP list of their fields.

A field is an ``int`` (RLP big-endian integer), ``bool`` (``0x01`` / empty), ``bytes`` or
``str`` (UTF-8). Encoding uses the hot-path encoder ``chain.rlp_codec`` (tested against
``rlp.encode``), decoding the ``rlp`` library, memoized by the stored bytes
(``framework.codec``); records are immutable, so a decoded record can be shared.
This is ~10x faster than ``rlp.Serializable`` for reading and copying, which the per-block
reward distribution does for every delegation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Self

import rlp

from cybermiles.chain.rlp_codec import EMPTY_STRING, encode_bytes, encode_items, encode_uint
from cybermiles.modules.framework.codec import memoized


def _int(item: bytes) -> int:
    return int.from_bytes(item, "big")


def _bool(item: bytes) -> bool:
    return item == b"\x01"


def _bytes(item: bytes) -> bytes:
    return item


def _str(item: bytes) -> str:
    return item.decode()


_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "int": _int,
    "bool": _bool,
    "bytes": _bytes,
    "str": _str,
}


def _encode_field(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"\x01" if value else EMPTY_STRING
    if isinstance(value, int):
        return encode_uint(value)
    if isinstance(value, str):
        return encode_bytes(value.encode())
    return encode_bytes(value)


class Record:
    """Base of a ``@dataclass(frozen=True, slots=True)`` record (see the module docstring)."""

    _decoders: ClassVar[tuple[Callable[[bytes], Any], ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._decoders = ()  # filled on first use: the dataclass decorator runs after this

    @classmethod
    def _field_decoders(cls) -> tuple[Callable[[bytes], Any], ...]:
        if not cls._decoders:
            cls._decoders = tuple(
                _DECODERS[getattr(f.type, "__name__", str(f.type))]
                for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            )
        return cls._decoders

    def encode(self) -> bytes:
        """The RLP list of the fields (``chain.rlp_codec``; the same bytes as ``rlp.encode``)."""
        return encode_items(
            _encode_field(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        )

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        return memoized(cls, raw, cls._decode)

    @classmethod
    def _decode(cls, raw: bytes) -> Self:
        items = rlp.decode(raw)
        decoders = cls._field_decoders()
        if not isinstance(items, list) or len(items) != len(decoders):
            raise ValueError(f"{cls.__name__}: malformed record")
        return cls(*(decode(item) for decode, item in zip(decoders, items, strict=True)))

    def copy(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
