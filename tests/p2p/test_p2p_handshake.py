"""NodeInfo encoding, validation and the compatibility rules."""

from __future__ import annotations

import orjson
import pytest

from cybermiles.p2p import (
    IncompatiblePeer,
    InvalidNodeInfo,
    NodeIdMismatch,
    NodeInfo,
    SelfConnection,
    check_compatible,
)
from cybermiles.p2p.handshake import MAX_NODE_INFO_SIZE, decode_node_info

OURS = NodeInfo("aa" * 20, "127.0.0.1:26656", 1234, b"\x01" * 32, "me", (32, 48), 1, "0.1")
THEIRS = NodeInfo("bb" * 20, "10.0.0.2:26656", 1234, b"\x01" * 32, "you", (32,), 1, "0.1")


def test_round_trip_is_canonical() -> None:
    data = THEIRS.encode()
    assert decode_node_info(data) == THEIRS
    assert data == orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS)
    extra = orjson.loads(data) | {"future_field": [1, 2]}
    assert decode_node_info(orjson.dumps(extra)) == THEIRS


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("node_id", "AA" * 20),
        ("node_id", "aa" * 19),
        ("chain_id", "1234"),
        ("chain_id", True),
        ("chain_id", -1),
        ("genesis_hash", "0x" + "01" * 31),
        ("genesis_hash", "01" * 33),
        ("protocol_version", 1.0),
        ("channels", [0]),
        ("channels", [32, 32]),
        ("channels", list(range(1, 100))),
        ("moniker", "x" * 65),
        ("moniker", "bell\x07"),
        ("listen_addr", None),
        ("version", 3),
    ],
)
def test_invalid_fields_are_refused(field: str, value: object) -> None:
    obj = orjson.loads(THEIRS.encode())
    obj[field] = value
    with pytest.raises(InvalidNodeInfo, match=field):
        decode_node_info(orjson.dumps(obj))


def test_garbage_and_oversize_are_refused() -> None:
    for data in (b"", b"\xff\xfe", b"[1,2]", b"null", b"{" * 10, b" " * (MAX_NODE_INFO_SIZE + 1)):
        with pytest.raises(InvalidNodeInfo):
            decode_node_info(data)
    obj = orjson.loads(THEIRS.encode())
    del obj["chain_id"]
    with pytest.raises(InvalidNodeInfo, match="chain_id"):
        decode_node_info(orjson.dumps(obj))


def test_compatibility_rules() -> None:
    check_compatible(OURS, THEIRS, THEIRS.node_id)
    with pytest.raises(NodeIdMismatch):
        check_compatible(OURS, THEIRS, "cc" * 20)
    with pytest.raises(SelfConnection):
        check_compatible(OURS, OURS, OURS.node_id)
    bad = [
        NodeInfo(**{**_fields(THEIRS), "chain_id": 19}),
        NodeInfo(**{**_fields(THEIRS), "genesis_hash": b"\x02" * 32}),
        NodeInfo(**{**_fields(THEIRS), "protocol_version": 2}),
    ]
    for theirs in bad:
        with pytest.raises(IncompatiblePeer):
            check_compatible(OURS, theirs, theirs.node_id)


def _fields(info: NodeInfo) -> dict:
    return {name: getattr(info, name) for name in info.__slots__}
