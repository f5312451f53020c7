"""Argument parsing: geth's hexutil rules, block tags and EIP-1898 objects."""

from __future__ import annotations

from typing import Any

import pytest

from cybermiles.rpc import params as p
from cybermiles.rpc.errors import ParamError


def rejects(fn: Any, value: Any, detail: str, *args: Any) -> None:
    with pytest.raises(ParamError) as info:
        fn(value, "arg", *args)
    assert info.value.name.split(".")[0] == "arg"
    assert detail in info.value.detail, info.value.detail


def test_quantity() -> None:
    assert p.quantity("0x0", "q") == 0
    assert p.quantity("0x1f", "q") == 31
    assert p.quantity("0X1F", "q") == 31
    assert p.quantity("0x" + "f" * 64, "q") == 2**256 - 1
    rejects(p.quantity, "0x", 'hex string "0x"')
    rejects(p.quantity, "0x01", "leading zero")
    rejects(p.quantity, "1", "without 0x prefix")
    rejects(p.quantity, "", "empty hex string")
    rejects(p.quantity, "0xg", "invalid hex string")
    rejects(p.quantity, 5, "got number")
    rejects(p.quantity, None, "got null")
    rejects(p.quantity, "0x1" + "0" * 64, "> 256 bits")
    assert p.uint64("0xffffffffffffffff", "q") == 2**64 - 1
    rejects(p.uint64, "0x10000000000000000", "> 64 bits")


def test_data_address_hash() -> None:
    assert p.data("0x", "d") == b""
    assert p.data("0xABcd", "d") == b"\xab\xcd"
    rejects(p.data, "0xabc", "odd length")
    rejects(p.data, "abcd", "without 0x")
    assert p.address("0x" + "Ab" * 20, "a") == b"\xab" * 20
    rejects(p.address, "0x" + "ab" * 19, "has length 38, want 40")
    rejects(p.address, "0x" + "ab" * 21, "has length 42, want 40")
    assert p.hash32("0x" + "01" * 32, "h") == b"\x01" * 32
    rejects(p.hash32, "0x01", "want 64")


def test_storage_slot() -> None:
    assert p.storage_slot("0x0", "s") == 0
    assert p.storage_slot("0x00000001", "s") == 1
    assert p.storage_slot("0x" + "ff" * 32, "s") == 2**256 - 1
    assert p.storage_slot("0x", "s") == 0
    rejects(p.storage_slot, "7", "without 0x")
    rejects(p.storage_slot, "0x" + "0" * 65, "at most 64")


def test_boolean() -> None:
    assert p.boolean(True, "b") is True
    rejects(p.boolean, 1, "true or false")
    rejects(p.boolean, "true", "true or false")


def test_block_tags() -> None:
    for tag in ("latest", "pending", "safe", "finalized"):
        ref = p.block_number_or_tag(tag, "b")
        assert ref.is_head and ref.tag == tag
    assert p.block_number_or_tag("earliest", "b") == p.BlockRef(number=0)
    assert p.block_number_or_tag("0x10", "b") == p.BlockRef(number=16)
    assert p.block_number_or_tag(None, "b") == p.LATEST
    rejects(p.block_number_or_tag, "newest", "latest, pending")
    rejects(p.block_number_or_tag, "0x010", "leading zero")
    rejects(p.block_number_or_tag, 16, "got number")
    rejects(p.block_number_or_tag, "0x" + "ab" * 32, "> 64 bits")


def test_block_ref_hash_and_eip1898() -> None:
    h = "0x" + "ab" * 32
    assert p.block_ref(h, "b") == p.BlockRef(hash=b"\xab" * 32)
    assert p.block_ref({"blockHash": h}, "b") == p.BlockRef(hash=b"\xab" * 32)
    assert p.block_ref({"blockHash": h, "requireCanonical": True}, "b") == p.BlockRef(
        hash=b"\xab" * 32, require_canonical=True
    )
    assert p.block_ref({"blockNumber": "0x5"}, "b") == p.BlockRef(number=5)
    assert p.block_ref({"blockNumber": "latest"}, "b").is_head
    assert p.block_ref("pending", "b").tag == "pending"
    rejects(p.block_ref, {"blockHash": h, "blockNumber": "0x1"}, "cannot specify both")
    rejects(p.block_ref, {}, "needs blockNumber or blockHash")
    rejects(p.block_ref, {"blockNumber": "0x1", "requireCanonical": True}, "only allowed")
    rejects(p.block_ref, {"blockHash": h, "requireCanonical": "yes"}, "true or false")
    rejects(p.block_ref, {"number": "0x1"}, "unknown field")
    rejects(p.block_ref, [1], "got array")
    with pytest.raises(ParamError) as info:
        p.block_ref({"blockHash": "0x12"}, "block")
    assert info.value.name == "block.blockHash"
