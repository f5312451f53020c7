"""RLP decoding of module records, memoized.

Module state is read far more often than it changes (every block's rewards and tallies read
every delegation), and pyrlp's decoder costs ~100 us per record. ``decode`` remembers the
result for each (sedes, bytes) pair: decoding is a pure function of the bytes and the results
are immutable (pyrlp returns tuples and immutable ``Serializable`` objects), so sharing them
cannot change behaviour. At most ``MAX_ENTRIES`` results are kept; then the memo starts over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import rlp

MAX_ENTRIES = 65_536
# (id(kind), raw) -> (kind, value): pyrlp's list sedes are not hashable, and keeping the kind
# object (a sedes or a record class) in the entry means its id cannot be reused meanwhile.
_memo: dict[tuple[int, bytes], tuple[Any, Any]] = {}


def memoized(kind: Any, raw: bytes, decoder: Callable[[bytes], Any]) -> Any:
    """``decoder(raw)``, remembered under ``(kind, raw)``; ``decoder`` must be pure and
    return an immutable value."""
    key = (id(kind), raw)
    entry = _memo.get(key)
    if entry is not None and entry[0] is kind:
        return entry[1]
    value = decoder(raw)
    if len(_memo) >= MAX_ENTRIES:
        _memo.clear()
    _memo[key] = (kind, value)
    return value


def decode(raw: bytes, sedes: Any) -> Any:
    """``rlp.decode(raw, sedes=sedes)``, memoized."""
    return memoized(sedes, raw, lambda data: rlp.decode(data, sedes=sedes))
