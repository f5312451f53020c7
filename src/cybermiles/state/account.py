"""Accounts as Ethereum stores them: ``rlp([nonce, balance, storage_root, code_hash])``."""

from __future__ import annotations

from dataclasses import dataclass

import rlp

from cybermiles.chain.rlp_codec import encode_bytes, encode_list, encode_uint
from cybermiles.crypto.keccak import EMPTY_KECCAK
from cybermiles.state.trie import BLANK_ROOT


@dataclass(frozen=True, slots=True)
class Account:
    """One account; ``storage_root`` is only authoritative after a block commit."""

    nonce: int = 0
    balance: int = 0
    storage_root: bytes = BLANK_ROOT
    code_hash: bytes = EMPTY_KECCAK

    @property
    def has_code(self) -> bool:
        return self.code_hash != EMPTY_KECCAK

    @property
    def is_empty(self) -> bool:
        """EIP-161: no code, zero nonce and zero balance."""
        return self.nonce == 0 and self.balance == 0 and self.code_hash == EMPTY_KECCAK


EMPTY_ACCOUNT = Account()


def encode_account(account: Account) -> bytes:
    return encode_list(
        encode_uint(account.nonce)
        + encode_uint(account.balance)
        + encode_bytes(account.storage_root)
        + encode_bytes(account.code_hash)
    )


def decode_account(data: bytes) -> Account:
    nonce, balance, storage_root, code_hash = rlp.decode(data)
    return Account(
        int.from_bytes(nonce, "big"), int.from_bytes(balance, "big"), storage_root, code_hash
    )


def encode_storage_value(value: int) -> bytes:
    """Storage trie leaves hold ``rlp(value)`` with the value's minimal big-endian bytes."""
    return encode_uint(value)
