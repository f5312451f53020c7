"""Module records encode exactly as pyrlp would and decode back to equal records."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import rlp
from hypothesis import given
from hypothesis import strategies as st

from cybermiles.modules.framework.record import Record


@dataclass(frozen=True, slots=True)
class Sample(Record):
    amount: int
    flag: bool
    owner: bytes
    label: str


@given(
    st.integers(min_value=0, max_value=2**256 - 1),
    st.booleans(),
    st.binary(max_size=80),
    st.text(max_size=60),
)
def test_encoding_matches_pyrlp_and_round_trips(
    amount: int, flag: bool, owner: bytes, label: str
) -> None:
    record = Sample(amount, flag, owner, label)
    assert record.encode() == rlp.encode([amount, int(flag), owner, label.encode()])
    assert Sample.decode(record.encode()) == record
    assert record.copy(amount=amount + 1).amount == amount + 1


def test_malformed_record_is_refused() -> None:
    with pytest.raises(ValueError, match="malformed"):
        Sample.decode(rlp.encode([1, 2]))
