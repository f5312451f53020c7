"""Tests for cybermiles.state.trie against py-trie, py-evm and known Ethereum vectors."""

from __future__ import annotations

import random

import pytest
import rlp
from eth.db.trie import make_trie_root_and_nodes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sha3 import keccak_256
from trie import HexaryTrie
from trie.constants import BLANK_NODE_HASH
from trie.exceptions import ValidationError

import cybermiles.state.trie as trie_mod
from cybermiles.state.trie import BLANK_ROOT, Trie, ordered_trie_root, verify_proof

SETTINGS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------- strategies

# Keys built from a tiny alphabet collide on long prefixes, produce keys that are prefixes of
# other keys (branch values) and nibble-level splits; 32-byte keys mimic the secure tries.
_prefixed_hashes = st.builds(
    lambda prefix, rest: (prefix + rest)[:32],
    st.sampled_from([b"", b"\x00", b"\x01\x23", b"\xab\xcd\xef"]),
    st.binary(min_size=32, max_size=32),
)
keys_st = st.one_of(
    st.binary(max_size=4).map(lambda b: bytes(x & 0x11 for x in b)),
    st.binary(min_size=0, max_size=6),
    st.binary(min_size=32, max_size=32),
    _prefixed_hashes,
    st.binary(min_size=56, max_size=70),  # hex-prefix path longer than 55 bytes
)
values_st = st.one_of(
    st.binary(min_size=1, max_size=1),  # single bytes, below and above 0x80
    st.binary(min_size=1, max_size=8),  # short: nodes get embedded in their parent
    st.binary(min_size=20, max_size=60),  # around the 32-byte hashing / 56-byte RLP limits
    st.binary(min_size=250, max_size=300),  # two-byte RLP length prefixes
)
key_pools = st.lists(keys_st, min_size=1, max_size=24, unique=True)


@st.composite
def op_sequences(draw: st.DrawFn) -> tuple[list[bytes], list[tuple[int, bytes, bool]]]:
    """A pool of keys and operations ``(key index, value or b"" to delete, check root)``."""
    pool = draw(key_pools)
    ops = draw(
        st.lists(
            st.tuples(
                st.integers(0, len(pool) - 1),
                st.one_of(st.just(b""), values_st, values_st),
                st.booleans(),
            ),
            max_size=60,
        )
    )
    return pool, ops


def _pytrie(items: dict[bytes, bytes]) -> HexaryTrie:
    ref = HexaryTrie({})
    for k, v in items.items():
        ref.set(k, v)
    return ref


_PYTRIE_BUG = object()


def _pytrie_get(ref: HexaryTrie, key: bytes) -> object:
    """py-trie 4.0.0 raises for a key that ends inside an extension's path (a py-trie bug:
    the key is simply absent, e.g. b"\x01" in {b"\x01\x00": .., b"\x01\x00\x00": ..})."""
    try:
        return ref.get(key) or None
    except ValidationError:
        return _PYTRIE_BUG


def test_pytrie_prefix_bug_is_not_ours() -> None:
    items = {b"\x01\x00": b"\x00", b"\x01\x00\x00": b"\x00"}
    t = Trie.from_items(items.items())
    assert t.root_hash() == _pytrie(items).root_hash
    assert t.get(b"\x01") is None
    assert verify_proof(t.root_hash(), b"\x01", t.prove(b"\x01")) is None
    assert _pytrie_get(_pytrie(items), b"\x01") in (None, _PYTRIE_BUG)


# ----------------------------------------------------------------------------- known vectors


def test_blank_root() -> None:
    assert keccak_256(rlp.encode(b"")).digest() == BLANK_ROOT == BLANK_NODE_HASH
    assert BLANK_ROOT.hex() == "56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"
    t = Trie()
    assert t.root_hash() == BLANK_ROOT
    assert len(t) == 0
    assert list(t.items()) == []
    assert t.get(b"x") is None
    assert t.prove(b"x") == []
    assert verify_proof(BLANK_ROOT, b"x", []) is None
    assert Trie.from_items([]).root_hash() == BLANK_ROOT
    assert Trie.from_items([(b"a", b"")]).root_hash() == BLANK_ROOT


# ethereum/tests TrieTests/trieanyorder.json
VECTORS = {
    "puppy": (
        {b"do": b"verb", b"dog": b"puppy", b"doge": b"coin", b"horse": b"stallion"},
        "5991bb8c6514148a29db676a14ac506cd2cd5775ace63c30a4fe457715e9ac84",
    ),
    "dogs": (
        {b"doe": b"reindeer", b"dog": b"puppy", b"dogglesworth": b"cat"},
        "8aad789dff2f538bca5d8ea56e8abe10f4c7ba3a5dea95fea4cd6e7c3a1168d3",
    ),
    "foo": (
        {b"foo": b"bar", b"food": b"bass"},
        "17beaa1648bafa633cda809c90c04af50fc8aed3cb40d16efbddee6fdf63c4c3",
    ),
    "smallValues": (
        {b"be": b"e", b"dog": b"puppy", b"bed": b"d"},
        "3f67c7a47520f79faa29255d2d3c084a7a6df0453116ed7232ff10277a8be68b",
    ),
    "testy": (
        {b"test": b"test", b"te": b"testy"},
        "8452568af70d8d140f58d941338542f645fcca50094b20f3c3d8c3df49337928",
    ),
    "hex": (
        {b"\x00\x45": bytes.fromhex("0123456789"), b"\x45\x00": bytes.fromhex("9876543210")},
        "285505fcabe84badc8aa310e2aae17eddc7d120aabec8a476902c8184b3a3503",
    ),
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_known_vectors(name: str) -> None:
    items, root_hex = VECTORS[name]
    root = bytes.fromhex(root_hex)
    assert Trie.from_items(items.items()).root_hash() == root
    for order in (list(items), sorted(items), sorted(items, reverse=True)):
        t = Trie()
        for k in order:
            t.set(k, items[k])
        assert t.root_hash() == root
        assert len(t) == len(items)
        assert list(t.items()) == sorted(items.items())
        for k in order:  # delete everything again, back to the blank root
            t.delete(k)
        assert t.root_hash() == BLANK_ROOT
        assert len(t) == 0


def test_puppy_incremental_roots_and_deletes() -> None:
    items = VECTORS["puppy"][0]
    t = Trie()
    ref = HexaryTrie({})
    for k, v in items.items():
        t.set(k, v)
        ref.set(k, v)
        assert t.root_hash() == ref.root_hash
    for k in [b"dog", b"nope", b"do", b"d", b"doge", b"horse"]:
        t.delete(k)
        ref.delete(k)
        assert t.root_hash() == ref.root_hash
        assert t.get(k) is None


def test_huge_value_and_long_keys() -> None:
    items = {
        b"k" * 100: b"v" * 70_000,  # 3-byte RLP length prefixes on value, leaf and branch
        b"k" * 99 + b"j": b"w",
        b"": b"root value",
        b"\xff" * 60: b"x" * 56,
    }
    assert Trie.from_items(items.items()).root_hash() == _pytrie(items).root_hash


# ----------------------------------------------------------------------------- vs py-trie


@SETTINGS
@given(op_sequences())
def test_random_operations_match_pytrie(case: tuple[list[bytes], list]) -> None:
    pool, ops = case
    t = Trie()
    ref = HexaryTrie({})
    model: dict[bytes, bytes] = {}
    for i, value, check in ops:
        key = pool[i]
        if value:
            t.set(key, value)
            model[key] = value
        elif check:  # exercise both spellings of a delete
            t.delete(key)
            model.pop(key, None)
        else:
            t.set(key, b"")
            model.pop(key, None)
        ref.set(key, value)
        if check:
            assert t.root_hash() == ref.root_hash
            assert t.get(key) == model.get(key)
        assert len(t) == len(model)
    assert t.root_hash() == ref.root_hash
    for key in pool:
        assert t.get(key) == model.get(key)
        assert _pytrie_get(ref, key) in (model.get(key), _PYTRIE_BUG)
    assert list(t.items()) == sorted(model.items())
    assert Trie.from_items(model.items()).root_hash() == ref.root_hash


@SETTINGS
@given(st.dictionaries(keys_st, values_st, max_size=40), st.randoms(use_true_random=False))
def test_from_items_matches_inserts_and_pytrie(
    items: dict[bytes, bytes], rnd: random.Random
) -> None:
    built = Trie.from_items(items.items())
    incremental = Trie()
    order = list(items)
    rnd.shuffle(order)
    for k in order:
        incremental.set(k, items[k])
    expected = _pytrie(items).root_hash
    assert built.root_hash() == incremental.root_hash() == expected
    assert len(built) == len(items)
    assert list(built.items()) == sorted(items.items())
    # The bulk-built tree must behave like any other under further writes.
    ref = _pytrie(items)
    for k in order[: len(order) // 2]:
        built.delete(k)
        ref.delete(k)
    built.set(b"extra", b"e")
    ref.set(b"extra", b"e")
    assert built.root_hash() == ref.root_hash


def test_from_items_duplicates_and_empty_values() -> None:
    items = [(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"b", b""), (b"c", b""), (b"d", b"4")]
    t = Trie.from_items(items)
    assert list(t.items()) == [(b"a", b"3"), (b"d", b"4")]
    assert len(t) == 2
    assert t.root_hash() == _pytrie({b"a": b"3", b"d": b"4"}).root_hash


def test_from_items_bulk_matches_pytrie() -> None:
    rnd = random.Random(7)
    items = {rnd.randbytes(32): rnd.randbytes(rnd.randint(1, 90)) for _ in range(2000)}
    t = Trie.from_items(items.items())
    assert t.root_hash() == _pytrie(items).root_hash
    assert len(t) == 2000


# ----------------------------------------------------------------------------- dirty tracking


def test_root_hash_hashes_only_dirty_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(1)
    items = {rnd.randbytes(32): rnd.randbytes(70) for _ in range(5000)}
    t = Trie.from_items(items.items())
    t.root_hash()
    calls = []
    real = trie_mod.keccak_256

    def counting(data: bytes = b"") -> object:
        calls.append(data)
        return real(data)

    monkeypatch.setattr(trie_mod, "keccak_256", counting)
    t.root_hash()
    assert calls == []  # nothing changed
    key = next(iter(items))
    t.set(key, b"new value that is long enough to be hashed......")
    t.root_hash()
    assert 2 <= len(calls) <= 6  # leaf + its ancestors (depth ~4 for 5000 random keys)
    calls.clear()
    t.delete(b"\x00" * 32)  # absent: no-op
    assert len(t) == 5000
    t.root_hash()
    assert calls == []
    monkeypatch.undo()
    items[key] = b"new value that is long enough to be hashed......"
    assert t.root_hash() == Trie.from_items(items.items()).root_hash()


# ----------------------------------------------------------------------------- node encoding


def _ref_structure(node: object) -> object:
    """Independent reference: the node as a Python RLP structure (children as refs)."""
    if isinstance(node, trie_mod._Leaf):
        return [_ref_hp(node.path, True), node.value]
    if isinstance(node, trie_mod._Ext):
        return [_ref_hp(node.path, False), _ref_child(node.child)]
    assert isinstance(node, trie_mod._Branch)
    return [_ref_child(c) for c in node.children] + [node.value]


def _ref_hp(path: str, leaf: bool) -> bytes:
    nibbles = [int(c, 16) for c in path]
    flag = 2 * leaf + len(nibbles) % 2
    nibbles = [flag, *nibbles] if len(nibbles) % 2 else [flag, 0, *nibbles]
    return bytes(16 * a + b for a, b in zip(nibbles[::2], nibbles[1::2], strict=True))


def _ref_child(node: object) -> object:
    if node is None:
        return b""
    structure = _ref_structure(node)
    enc = rlp.encode(structure)
    return structure if len(enc) < 32 else keccak_256(enc).digest()


def _walk(node: object) -> list[object]:
    out = [node]
    if isinstance(node, trie_mod._Ext):
        out += _walk(node.child)
    elif isinstance(node, trie_mod._Branch):
        for c in node.children:
            if c is not None:
                out += _walk(c)
    return out


@SETTINGS
@given(st.dictionaries(keys_st, values_st, max_size=30))
def test_hand_written_node_rlp_matches_rlp_encode(items: dict[bytes, bytes]) -> None:
    t = Trie.from_items(items.items())
    t.root_hash()
    if t._root is None:
        return
    for node in _walk(t._root):
        enc = node.encode()
        assert enc == rlp.encode(_ref_structure(node))
        assert node.ref == (enc if len(enc) < 32 else b"\xa0" + keccak_256(enc).digest())


@given(st.binary(max_size=70_000).filter(lambda b: len(b) < 300 or len(b) > 60_000))
@settings(max_examples=80, deadline=None)
def test_rlp_helpers_match_rlp_encode(data: bytes) -> None:
    assert trie_mod._enc_str(data) == rlp.encode(data)
    items = [data[i : i + 7] for i in range(0, len(data), 7)]
    assert trie_mod._enc_list(b"".join(rlp.encode(x) for x in items)) == rlp.encode(items)


# ----------------------------------------------------------------------------- proofs


def _geth_style(pytrie_proof: tuple) -> list[bytes]:
    """py-trie lists embedded (< 32-byte) nodes separately; geth and we do not."""
    encoded = [rlp.encode(n) for n in pytrie_proof]
    return [n for i, n in enumerate(encoded) if i == 0 or len(n) >= 32]


@SETTINGS
@given(st.dictionaries(keys_st, values_st, max_size=30), st.lists(keys_st, max_size=8))
def test_proofs(items: dict[bytes, bytes], absent: list[bytes]) -> None:
    t = Trie.from_items(items.items())
    root = t.root_hash()
    ref = _pytrie(items)
    for key in [*items, *absent]:
        proof = t.prove(key)
        expected = items.get(key)
        assert verify_proof(root, key, proof) == expected
        assert proof == _geth_style(ref.get_proof(key))
        decoded = [rlp.decode(n) for n in proof]
        if proof and _pytrie_get(ref, key) is not _PYTRIE_BUG:
            assert (HexaryTrie.get_from_proof(root, key, decoded) or None) == expected


@SETTINGS
@given(
    st.dictionaries(keys_st, values_st, min_size=1, max_size=30),
    st.lists(keys_st, max_size=4),
    st.randoms(use_true_random=False),
)
def test_tampered_proofs_raise(
    items: dict[bytes, bytes], absent: list[bytes], rnd: random.Random
) -> None:
    t = Trie.from_items(items.items())
    root = t.root_hash()
    for key in [*items, *absent]:
        proof = t.prove(key)
        assert proof
        # Flip one bit of one node.
        i = rnd.randrange(len(proof))
        node = bytearray(proof[i])
        node[rnd.randrange(len(node))] ^= 1 << rnd.randrange(8)
        tampered = [*proof[:i], bytes(node), *proof[i + 1 :]]
        with pytest.raises(ValueError):
            verify_proof(root, key, tampered)
        # Drop one node.
        with pytest.raises(ValueError):
            verify_proof(root, key, proof[:i] + proof[i + 1 :])
        # Wrong root.
        with pytest.raises(ValueError):
            verify_proof(keccak_256(root).digest(), key, proof)


def test_proof_edge_cases() -> None:
    t = Trie.from_items(VECTORS["puppy"][0].items())
    root = t.root_hash()
    with pytest.raises(ValueError):
        verify_proof(root, b"dog", [])
    garbage = b"\xff\x00"
    with pytest.raises(ValueError):
        verify_proof(keccak_256(garbage).digest(), b"dog", [garbage])
    bad_shape = rlp.encode([b"a", b"b", b"c"])
    with pytest.raises(ValueError):
        verify_proof(keccak_256(bad_shape).digest(), b"dog", [bad_shape])
    # A single tiny root node is still listed, and verifies.
    small = Trie()
    small.set(b"a", b"b")
    assert small.prove(b"a") == [rlp.encode([b"\x20\x61", b"b"])]
    assert verify_proof(small.root_hash(), b"a", small.prove(b"a")) == b"b"
    assert verify_proof(small.root_hash(), b"c", small.prove(b"c")) is None


# ----------------------------------------------------------------------------- ordered tries


class _Item:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def encode(self) -> bytes:
        return self.data


def _pyevm_root(values: list[bytes]) -> bytes:
    return make_trie_root_and_nodes(tuple(_Item(v) for v in values))[0]


def test_ordered_trie_root_empty() -> None:
    assert ordered_trie_root([]) == BLANK_ROOT == _pyevm_root([])


@pytest.mark.parametrize("n", [1, 2, 16, 127, 128, 129, 300])
def test_ordered_trie_root_sizes(n: int) -> None:
    rnd = random.Random(n)
    values = [rnd.randbytes(rnd.choice([1, 5, 40, 120])) for _ in range(n)]
    assert ordered_trie_root(values) == _pyevm_root(values)


@SETTINGS
@given(st.lists(values_st, max_size=40))
def test_ordered_trie_root_matches_pyevm(values: list[bytes]) -> None:
    assert ordered_trie_root(values) == _pyevm_root(values)
