"""What the pool needs to know about chain state: the ``StateReader`` protocol.

The node passes an object reading the state at the current head. The pool calls it on every
``add`` (nonce, balance, and for free transactions code presence and quota use) and for every
pooled sender on ``reset``; implementations must be cheap and thread-safe for reads.
"""

from __future__ import annotations

from typing import Protocol


class StateReader(Protocol):
    """Read-only view of the head state, keyed by 20-byte addresses."""

    def get_nonce(self, addr: bytes) -> int:
        """Next nonce the chain expects from ``addr``."""
        ...

    def get_balance(self, addr: bytes) -> int:
        """Balance of ``addr`` in wei."""
        ...

    def has_code(self, addr: bytes) -> bool:
        """True if ``addr`` holds contract code (including an EIP-7702 delegation)."""
        ...

    def free_txs_used(self, addr: bytes) -> int:
        """Free transactions of ``addr`` already included in the current quota window."""
        ...
