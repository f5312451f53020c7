"""Why a transaction cannot go into the block being built (geth's messages)."""

from cybermiles.chain.errors import InvalidTransaction


class TxRejected(InvalidTransaction):
    """The transaction is invalid against the current block state (nonce, funds, gas, fees)."""


class NonceTooHigh(TxRejected):
    """The transaction may become valid later, once the sender's earlier nonces are mined."""
