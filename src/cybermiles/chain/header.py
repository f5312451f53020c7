"""Block headers: Ethereum Prague headers, encoded with py-evm's RLP sedes.

Our chain fills the post-merge fields as follows (documented in docs/architecture.md):
``difficulty`` 0, ``nonce`` zero, ``uncles_hash`` the empty-list hash, ``base_fee_per_gas`` 0,
``withdrawals_root`` the empty root, blob gas 0, ``parent_beacon_block_root`` zero,
``requests_hash`` sha256 of no requests. ``mix_hash`` (PREVRANDAO) will carry the chain's random
beacon and ``extra_data`` the hash of the previous block's BFT commit.
"""

from __future__ import annotations

import rlp
from eth.constants import EMPTY_UNCLE_HASH
from eth.vm.forks.prague.blocks import PragueBlockHeader

from cybermiles.crypto.keccak import keccak256

Header = PragueBlockHeader
ZERO_HASH = b"\x00" * 32
ZERO_NONCE = b"\x00" * 8
EMPTY_OMMERS_HASH = EMPTY_UNCLE_HASH


def make_header(**fields: object) -> Header:
    """Build a header with our chain's constants for the fields it does not use."""
    fields.setdefault("difficulty", 0)
    fields.setdefault("nonce", ZERO_NONCE)
    fields.setdefault("base_fee_per_gas", 0)
    return PragueBlockHeader(**fields)  # type: ignore[arg-type]


def encode_header(header: Header) -> bytes:
    return rlp.encode(header)


def decode_header(data: bytes) -> Header:
    return rlp.decode(data, sedes=PragueBlockHeader)


def header_hash(header: Header) -> bytes:
    return keccak256(rlp.encode(header))
