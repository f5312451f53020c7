"""Reading and writing blocks, receipts and the transaction index in the LMDB tables.

Writes happen inside the block's single write transaction (see ``node.blockchain``); reads
open their own short read transactions, so any thread may call them.
"""

from __future__ import annotations

from dataclasses import dataclass

import lmdb
import rlp

from cybermiles.chain.database import Database, be64
from cybermiles.chain.header import Header, decode_header, encode_header, header_hash
from cybermiles.chain.receipts import Receipt, decode_receipt
from cybermiles.chain.rlp_codec import encode_bytes, encode_items, encode_list
from cybermiles.chain.transactions import Transaction


@dataclass(frozen=True, slots=True)
class StoredTx:
    """A transaction as stored in a block body: its raw bytes and its recovered sender."""

    raw: bytes
    sender: bytes


@dataclass(frozen=True, slots=True)
class TxLocation:
    block_number: int
    index: int


def write_block(
    txn: lmdb.Transaction,
    db: Database,
    header: Header,
    txs: list[Transaction],
    encoded_receipts: list[bytes],
) -> bytes:
    """Write a block with its (consensus-encoded) receipts and indexes and move the head to it;
    return its hash."""
    number = header.block_number
    key = be64(number)
    block_hash = header_hash(header)
    txn.put(key, encode_header(header), db=db[b"headers"])
    txn.put(block_hash, key, db=db[b"hashes"])
    body = encode_items(encode_list(encode_bytes(tx.raw) + encode_bytes(tx.sender)) for tx in txs)
    txn.put(key, body, db=db[b"bodies"])
    txn.put(key, encode_items(encode_bytes(r) for r in encoded_receipts), db=db[b"receipts"])
    txindex = db[b"txindex"]
    for index, tx in enumerate(txs):
        txn.put(tx.hash, key + index.to_bytes(4, "big"), db=txindex)
    txn.put(b"head", key, db=db[b"meta"])
    return block_hash


def write_consensus_data(
    txn: lmdb.Transaction, db: Database, number: int, data: bytes, evidence_hashes: list[bytes]
) -> None:
    """Store block ``number``'s consensus data (``block_codec.encode_consensus_data``) and mark
    its evidence as included (in the block's own write transaction)."""
    key = be64(number)
    txn.put(key, data, db=db[b"consensus"])
    table = db[b"evidence"]
    for evidence_hash in evidence_hashes:
        txn.put(evidence_hash, key, db=table)


def write_seen_commit(txn: lmdb.Transaction, db: Database, number: int, commit: bytes) -> None:
    """Store this node's own commit of block ``number`` (served to syncing peers until the
    next block's ``last_commit`` canonicalises it)."""
    txn.put(be64(number), commit, db=db[b"seencommit"])


def write_validator_set(
    txn: lmdb.Transaction, db: Database, height: int, encoded_set: bytes
) -> None:
    """Store the (encoded) validator set that votes on ``height``."""
    txn.put(be64(height), encoded_set, db=db[b"valsets"])


class BlockStore:
    """Thread-safe readers over the block tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _get(self, table: bytes, key: bytes) -> bytes | None:
        with self.db.begin() as txn:
            return txn.get(key, db=self.db[table])

    def head_number(self) -> int | None:
        raw = self._get(b"meta", b"head")
        return None if raw is None else int.from_bytes(raw, "big")

    def header(self, number: int) -> Header | None:
        raw = self._get(b"headers", be64(number))
        return None if raw is None else decode_header(raw)

    def raw_headers(self, first: int, last: int) -> list[bytes | None]:
        """Header RLPs of blocks ``first..last`` (None where missing), in one read transaction."""
        with self.db.begin() as txn:
            table = self.db[b"headers"]
            return [txn.get(be64(number), db=table) for number in range(first, last + 1)]

    def number_of(self, block_hash: bytes) -> int | None:
        raw = self._get(b"hashes", block_hash)
        return None if raw is None else int.from_bytes(raw, "big")

    def body(self, number: int) -> list[StoredTx] | None:
        raw = self._get(b"bodies", be64(number))
        if raw is None:
            return None
        return [StoredTx(tx_raw, sender) for tx_raw, sender in rlp.decode(raw)]

    def receipts(self, number: int) -> list[Receipt] | None:
        raw = self._get(b"receipts", be64(number))
        if raw is None:
            return None
        return [decode_receipt(item) for item in rlp.decode(raw)]

    def consensus_data(self, number: int) -> bytes | None:
        """Block ``number``'s consensus data (``block_codec.decode_consensus_data``)."""
        return self._get(b"consensus", be64(number))

    def seen_commit(self, number: int) -> bytes | None:
        return self._get(b"seencommit", be64(number))

    def validator_set(self, height: int) -> bytes | None:
        """The encoded validator set of ``height``, if stored."""
        return self._get(b"valsets", be64(height))

    def evidence_height(self, evidence_hash: bytes) -> int | None:
        """The number of the block that included the evidence, if any."""
        raw = self._get(b"evidence", evidence_hash)
        return None if raw is None else int.from_bytes(raw, "big")

    def raw_body(self, number: int) -> list[bytes] | None:
        """The raw transactions of block ``number`` (without senders)."""
        body = self.body(number)
        return None if body is None else [tx.raw for tx in body]

    def tx_location(self, tx_hash: bytes) -> TxLocation | None:
        raw = self._get(b"txindex", tx_hash)
        if raw is None:
            return None
        return TxLocation(int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big"))
