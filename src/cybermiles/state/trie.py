"""In-memory Ethereum Merkle-Patricia trie that hashes each dirty node once per commit.

Rules (Yellow Paper, Appendix D), as implemented here:

* A key is the sequence of nibbles (4-bit halves) of its bytes, high nibble first. Keys are raw
  bytes: callers hash them themselves for the "secure" state/storage tries.
* Three node kinds: a *leaf* ``[HP(path, leaf=True), value]``, an *extension*
  ``[HP(path, leaf=False), child]`` whose child is always a branch, and a *branch* of 17 items
  (16 children indexed by the next nibble, then the value of the key ending at the branch).
* HP (hex-prefix) encoding packs a nibble path into bytes: the first nibble is the flag
  ``2 * is_leaf + is_odd``; an even-length path is padded with a zero nibble after the flag.
* A child is referenced in its parent by ``keccak(rlp(child))`` when ``rlp(child)`` is at least
  32 bytes long, otherwise the child's RLP structure is embedded in the parent as is.
* The root hash is always ``keccak(rlp(root))``, even when the root node is shorter than 32
  bytes; the empty trie's root is ``keccak(rlp(b""))`` (:data:`BLANK_ROOT`).
* Setting a key to ``b""`` deletes it. A branch left with a single item after a deletion
  collapses into a leaf or extension, and consecutive extension/leaf paths merge, so the shape
  (and therefore the root) depends only on the set of key/value pairs.

Implementation: nodes are small mutable Python objects (``__slots__``) whose nibble paths are
stored as lowercase hex strings (one character per nibble). Each node caches its *reference*
(the bytes its parent embeds: ``0xa0 + hash`` or the raw RLP when shorter than 32 bytes). Every
write clears the cached reference of each node on the path it walks, so :meth:`Trie.root_hash`
re-encodes and re-hashes only those nodes. Node RLP is encoded by hand (tested against
``rlp.encode``). Nodes are never shared between parents, which makes in-place mutation safe.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

import rlp
from sha3 import keccak_256

from cybermiles.chain.rlp_codec import LIST_PREFIX as _LIST_PREFIX
from cybermiles.chain.rlp_codec import STR_PREFIX as _STR_PREFIX
from cybermiles.chain.rlp_codec import encode_bytes as _enc_str
from cybermiles.chain.rlp_codec import encode_list as _enc_list
from cybermiles.chain.rlp_codec import index_keys

__all__ = ["BLANK_ROOT", "Trie", "ordered_trie_root", "verify_proof"]

BLANK_ROOT: bytes = keccak_256(b"\x80").digest()
assert BLANK_ROOT.hex() == "56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"

_HEX = "0123456789abcdef"
_NIB: dict[str, int] = {c: i for i, c in enumerate(_HEX)}
_EMPTY = b"\x80"  # rlp(b""): an empty branch slot or an empty branch value
_BYTE = [bytes((i,)) for i in range(256)]


# --------------------------------------------------------------------------- RLP helpers


def _hp(path: str, leaf: bool) -> bytes:
    """Hex-prefix encode a nibble path given as a hex string."""
    if len(path) & 1:
        return bytes.fromhex(("3" if leaf else "1") + path)
    return bytes.fromhex(("20" if leaf else "00") + path)


def _common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


# --------------------------------------------------------------------------- nodes


class _Leaf:
    __slots__ = ("path", "ref", "value")

    def __init__(self, path: str, value: bytes) -> None:
        self.path = path
        self.value = value
        self.ref: bytes | None = None

    def encode(self) -> bytes:
        p = self.path
        hp = bytes.fromhex("3" + p if len(p) & 1 else "20" + p)
        n = len(hp)
        if n == 1:  # the flag nibble keeps a 1-byte HP below 0x80
            payload = hp
        elif n < 56:
            payload = _STR_PREFIX[n] + hp
        else:
            payload = _enc_str(hp)
        v = self.value
        n = len(v)
        if n == 1 and v[0] < 0x80:
            payload += v
        elif n < 56:
            payload += _STR_PREFIX[n] + v
        else:
            payload += _enc_str(v)
        n = len(payload)
        return _LIST_PREFIX[n] + payload if n < 56 else _enc_list(payload)

    def commit(self) -> bytes:
        enc = self.encode()
        ref = enc if len(enc) < 32 else b"\xa0" + keccak_256(enc).digest()
        self.ref = ref
        return ref


class _Ext:
    __slots__ = ("child", "path", "ref")

    def __init__(self, path: str, child: _Branch) -> None:
        self.path = path
        self.child = child
        self.ref: bytes | None = None

    def encode(self) -> bytes:
        child = self.child
        return _enc_list(_enc_str(_hp(self.path, False)) + (child.ref or child.commit()))

    def commit(self) -> bytes:
        enc = self.encode()
        ref = enc if len(enc) < 32 else b"\xa0" + keccak_256(enc).digest()
        self.ref = ref
        return ref


class _Branch:
    __slots__ = ("children", "ref", "value")

    def __init__(self) -> None:
        self.children: list[_Node | None] = [None] * 16
        self.value = b""
        self.ref: bytes | None = None

    def encode(self) -> bytes:
        parts = [_EMPTY if c is None else (c.ref or c.commit()) for c in self.children]
        value = self.value
        parts.append(_enc_str(value) if value else _EMPTY)
        payload = b"".join(parts)
        n = len(payload)
        if n < 56:
            return _LIST_PREFIX[n] + payload
        if n < 256:
            return b"\xf8" + _BYTE[n] + payload
        return _enc_list(payload)

    def commit(self) -> bytes:
        enc = self.encode()
        ref = enc if len(enc) < 32 else b"\xa0" + keccak_256(enc).digest()
        self.ref = ref
        return ref


_Node = _Leaf | _Ext | _Branch


# --------------------------------------------------------------------------- trie


class Trie:
    """Mutable in-memory Merkle-Patricia trie with lazy, incremental hashing."""

    __slots__ = ("_root", "_root_hash", "_size")

    def __init__(self) -> None:
        self._root: _Node | None = None
        self._root_hash: bytes | None = BLANK_ROOT
        self._size = 0

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_items(cls, items: Iterable[tuple[bytes, bytes]]) -> Trie:
        """Build a trie in one pass from ``(key, value)`` pairs.

        Later duplicates win and empty values are skipped (``b""`` means absent), matching a
        sequence of :meth:`set` calls.
        """
        latest: dict[bytes, bytes] = {}
        for key, value in items:
            latest[key] = value
        keys = sorted([k for k, v in latest.items() if v])  # byte order == nibble order
        trie = cls()
        if len(keys) == 1:
            trie._root = _Leaf(keys[0].hex(), latest[keys[0]])
        elif keys:
            paths = [k.hex() for k in keys]
            values = [latest[k] for k in keys]
            # The build only allocates acyclic nodes: pausing the cyclic GC, which would
            # otherwise rescan the growing tree many times, more than halves the time.
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                trie._root = _build(paths, values, 0, len(paths), 0)
            finally:
                if gc_was_enabled:
                    gc.enable()
        trie._size = len(keys)
        trie._root_hash = None if keys else BLANK_ROOT
        return trie

    # ------------------------------------------------------------------ reads

    def get(self, key: bytes) -> bytes | None:
        path = key.hex()
        end = len(path)
        pos = 0
        node = self._root
        while node is not None:
            t = type(node)
            if t is _Branch:
                if pos == end:
                    return node.value or None
                node = node.children[_NIB[path[pos]]]
                pos += 1
            elif t is _Leaf:
                return node.value if node.path == path[pos:] else None
            else:
                if not path.startswith(node.path, pos):
                    return None
                pos += len(node.path)
                node = node.child
        return None

    def __len__(self) -> int:
        return self._size

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` pairs in ascending key order."""
        if self._root is None:
            return
        stack: list[tuple[str, _Node]] = [("", self._root)]
        while stack:
            prefix, node = stack.pop()
            t = type(node)
            if t is _Leaf:
                yield bytes.fromhex(prefix + node.path), node.value
            elif t is _Ext:
                stack.append((prefix + node.path, node.child))
            else:
                if node.value:
                    yield bytes.fromhex(prefix), node.value
                children = node.children
                for i in range(15, -1, -1):
                    child = children[i]
                    if child is not None:
                        stack.append((prefix + _HEX[i], child))

    # ------------------------------------------------------------------ writes

    def set(self, key: bytes, value: bytes) -> None:
        if not value:
            self.delete(key)
            return
        self._root_hash = None
        path = key.hex()
        end = len(path)
        pos = 0
        parent: _Branch | None = None
        slot = 0
        node = self._root
        # Walk down clearing cached references; stop at the node that gets replaced.
        while True:
            if node is None:
                new: _Node = _Leaf(path[pos:], value)
                self._size += 1
                break
            node.ref = None
            t = type(node)
            if t is _Branch:
                if pos == end:
                    if not node.value:
                        self._size += 1
                    node.value = value
                    return
                parent = node
                slot = _NIB[path[pos]]
                node = node.children[slot]
                pos += 1
            elif t is _Leaf:
                lp = node.path
                if path.endswith(lp) and len(lp) == end - pos:
                    node.value = value
                    return
                rest = path[pos:]
                k = _common_prefix_len(lp, rest)
                branch = _Branch()
                if len(lp) == k:
                    branch.value = node.value
                else:
                    node.path = lp[k + 1 :]
                    branch.children[_NIB[lp[k]]] = node
                if len(rest) == k:
                    branch.value = value
                else:
                    branch.children[_NIB[rest[k]]] = _Leaf(rest[k + 1 :], value)
                self._size += 1
                new = _Ext(rest[:k], branch) if k else branch
                break
            else:
                ep = node.path
                if path.startswith(ep, pos):
                    pos += len(ep)
                    node = node.child  # a branch: never replaced, so no parent bookkeeping
                    continue
                rest = path[pos:]
                k = _common_prefix_len(ep, rest)  # < len(ep)
                branch = _Branch()
                if len(ep) == k + 1:
                    branch.children[_NIB[ep[k]]] = node.child
                else:
                    node.path = ep[k + 1 :]
                    branch.children[_NIB[ep[k]]] = node
                if len(rest) == k:
                    branch.value = value
                else:
                    branch.children[_NIB[rest[k]]] = _Leaf(rest[k + 1 :], value)
                self._size += 1
                new = _Ext(rest[:k], branch) if k else branch
                break
        if parent is None:
            self._root = new
        else:
            parent.children[slot] = new

    def delete(self, key: bytes) -> None:
        if self.get(key) is None:
            return
        self._root_hash = None
        self._size -= 1
        self._root = _delete(self._root, key.hex())  # type: ignore[arg-type]

    # ------------------------------------------------------------------ hashing & proofs

    def root_hash(self) -> bytes:
        """Return the root hash, hashing only the nodes changed since the previous call."""
        h = self._root_hash
        if h is not None:
            return h
        root = self._root
        if root is None:
            h = BLANK_ROOT
        else:
            ref = root.ref or root.commit()
            h = ref[1:] if len(ref) == 33 else keccak_256(ref).digest()
        self._root_hash = h
        return h

    def prove(self, key: bytes) -> list[bytes]:
        """RLP-encoded nodes from the root toward ``key`` (an inclusion or exclusion proof).

        Nodes embedded in their parent (RLP shorter than 32 bytes) are not listed separately;
        the root node is always listed. The empty trie gives ``[]``.
        """
        self.root_hash()
        proof: list[bytes] = []
        path = key.hex()
        end = len(path)
        pos = 0
        node = self._root
        first = True
        while node is not None:
            if first or len(node.ref) >= 32:  # type: ignore[arg-type]
                proof.append(node.encode())
            first = False
            t = type(node)
            if t is _Branch:
                if pos == end:
                    break
                node = node.children[_NIB[path[pos]]]
                pos += 1
            elif t is _Leaf:
                break
            else:
                if not path.startswith(node.path, pos):
                    break
                pos += len(node.path)
                node = node.child
        return proof


def _build(paths: list[str], values: list[bytes], lo: int, hi: int, depth: int) -> _Node:
    """Build the subtree for sorted, unique ``paths[lo:hi]`` (``hi - lo >= 2``) that all
    start with ``paths[lo][:depth]``."""
    first = paths[lo]
    last = paths[hi - 1]
    # Sorted input: the common prefix of all paths is that of the first and the last.
    end = min(len(first), len(last))
    k = depth
    while k < end and first[k] == last[k]:
        k += 1
    branch = _Branch()
    children = branch.children
    i = lo
    if len(first) == k:  # only the shortest (first) path can end at the branch
        branch.value = values[lo]
        i += 1
    prefix = first[:k]
    k1 = k + 1
    while i < hi:
        path = paths[i]
        c = path[k]
        if i + 1 == hi or paths[i + 1][k] != c:  # a single key under this nibble
            children[_NIB[c]] = _Leaf(path[k1:], values[i])
            i += 1
        else:
            j = bisect_left(paths, prefix + chr(ord(c) + 1), i + 2, hi)
            children[_NIB[c]] = _build(paths, values, i, j, k1)
            i = j
    return _Ext(first[depth:k], branch) if k > depth else branch


def _delete(node: _Node, path: str) -> _Node | None:
    """Delete ``path`` (known to be present) below ``node``; return the replacement node."""
    node.ref = None
    t = type(node)
    if t is _Leaf:
        return None
    if t is _Ext:
        ep = node.path
        child = _delete(node.child, path[len(ep) :])
        if type(child) is _Branch:
            node.child = child
            return node
        # The branch below collapsed into a leaf or extension: merge the paths.
        child.path = ep + child.path  # type: ignore[union-attr]
        return child
    # Branch
    children = node.children
    if path:
        i = _NIB[path[0]]
        child = _delete(children[i], path[1:])  # type: ignore[arg-type]
        children[i] = child
        if child is not None:
            return node  # the slot is still occupied: the branch keeps >= 2 items
    else:
        node.value = b""
    remaining = 16 - children.count(None)
    if remaining + (1 if node.value else 0) >= 2:
        return node
    if remaining == 0:
        return _Leaf("", node.value)
    i = next(i for i, c in enumerate(children) if c is not None)
    only = children[i]
    if type(only) is _Branch:
        return _Ext(_HEX[i], only)
    only.ref = None  # type: ignore[union-attr]
    only.path = _HEX[i] + only.path  # type: ignore[union-attr]
    return only


# --------------------------------------------------------------------------- proofs


def verify_proof(root: bytes, key: bytes, proof: list[bytes]) -> bytes | None:
    """Check ``proof`` (as returned by :meth:`Trie.prove`) against ``root``.

    Returns the value stored under ``key``, or ``None`` if the proof shows the key is absent.
    Raises :class:`ValueError` if the proof is malformed, incomplete or does not match ``root``.
    """
    db = {keccak_256(n).digest(): n for n in proof}
    if root == BLANK_ROOT and root not in db:
        return None

    def load(h: bytes) -> object:
        enc = db.get(h)
        if enc is None:
            raise ValueError(f"proof is missing node {h.hex()}")
        try:
            return rlp.decode(enc)
        except rlp.exceptions.DecodingError as e:
            raise ValueError(f"undecodable proof node {h.hex()}") from e

    node = load(root)
    path = key.hex()
    pos = 0
    while True:
        if node == b"":
            return None
        if not isinstance(node, list):
            raise ValueError("proof node is not a list")
        if len(node) == 17:
            if pos == len(path):
                value = node[16]
                if not isinstance(value, bytes):
                    raise ValueError("branch value is not a byte string")
                return value or None
            ref = node[_NIB[path[pos]]]
            pos += 1
        elif len(node) == 2:
            hp, ref = node
            if not isinstance(hp, bytes) or not hp:
                raise ValueError("bad hex-prefix path")
            hph = hp.hex()
            flag = hph[0]
            if flag in "02":
                if hph[1] != "0":
                    raise ValueError("bad hex-prefix padding")
                node_path = hph[2:]
            elif flag in "13":
                node_path = hph[1:]
            else:
                raise ValueError("bad hex-prefix flag")
            if flag in "23":  # leaf
                if not isinstance(ref, bytes) or not ref:
                    raise ValueError("bad leaf value")
                return ref if path[pos:] == node_path else None
            if not node_path:
                raise ValueError("empty extension path")
            if not path.startswith(node_path, pos):
                return None
            pos += len(node_path)
        else:
            raise ValueError(f"bad node with {len(node)} items")
        # Follow the reference ``ref``: blank, embedded node, or hash of a node in the proof.
        if isinstance(ref, list):
            node = ref
        elif ref == b"":
            return None
        elif len(ref) == 32:
            node = load(ref)
        else:
            raise ValueError("bad child reference")


# --------------------------------------------------------------------------- ordered tries


def ordered_trie_root(values: Sequence[bytes]) -> bytes:
    """Root of the trie mapping ``rlp.encode(i)`` to ``values[i]`` (transactions, receipts...)."""
    return Trie.from_items(zip(index_keys(len(values)), values, strict=True)).root_hash()
