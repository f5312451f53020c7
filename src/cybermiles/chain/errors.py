"""Errors raised by chain-level validation.

Tree::

    ChainError
    ├── GenesisError            bad genesis file or field (names the field)
    └── InvalidTransaction      never valid (decoding, signature, chain id)
        └── (mempool and execution add their own leaves)

Messages of transaction errors use geth's wording so Ethereum tools recognise them.
"""


class ChainError(Exception):
    """Base of all chain-level errors."""


class GenesisError(ChainError):
    """A genesis file or one of its fields is invalid; the message names the field."""


class InvalidTransaction(ChainError):
    """A transaction is malformed, badly signed or not for this chain."""
