"""Errors raised when the transaction pool refuses a transaction.

Every leaf carries geth's wording as its ``message`` class attribute, and ``str(err)`` is
that message optionally followed by ``": <detail>"`` exactly as geth wraps its errors
(``nonce too low: next nonce 5, tx nonce 3``), so Ethereum tools that match on the
message prefix recognise them.

Tree::

    InvalidTransaction (chain.errors)
    └── MempoolError
        ├── AlreadyKnown                  already known
        ├── OversizedData                 oversized data
        ├── ExceedsBlockGasLimit          exceeds block gas limit
        ├── TipAboveFeeCap                max priority fee per gas higher than max fee per gas
        ├── NonceTooLow                   nonce too low
        ├── IntrinsicGasTooLow            intrinsic gas too low
        │   └── FloorDataGasTooLow        insufficient gas for floor data gas cost (EIP-7623)
        ├── Underpriced                   transaction underpriced
        ├── InsufficientFunds             insufficient funds for gas * price + value
        ├── ReplacementUnderpriced        replacement transaction underpriced
        ├── AccountLimitExceeded          account limit exceeded
        └── TxPoolFull                    txpool is full
            └── FutureReplacePending      future transaction tries to replace pending
"""

from __future__ import annotations

from typing import ClassVar

from cybermiles.chain.errors import InvalidTransaction


class MempoolError(InvalidTransaction):
    """The pool refused a transaction; ``message`` is geth's wording, ``detail`` the context."""

    message: ClassVar[str] = "transaction rejected by pool"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(f"{self.message}: {detail}" if detail else self.message)


class AlreadyKnown(MempoolError):
    message = "already known"


class OversizedData(MempoolError):
    message = "oversized data"


class ExceedsBlockGasLimit(MempoolError):
    message = "exceeds block gas limit"


class TipAboveFeeCap(MempoolError):
    message = "max priority fee per gas higher than max fee per gas"


class NonceTooLow(MempoolError):
    message = "nonce too low"


class IntrinsicGasTooLow(MempoolError):
    message = "intrinsic gas too low"


class FloorDataGasTooLow(IntrinsicGasTooLow):
    """EIP-7623 calldata floor not covered; geth reports it apart from intrinsic gas."""

    message = "insufficient gas for floor data gas cost"


class Underpriced(MempoolError):
    message = "transaction underpriced"


class InsufficientFunds(MempoolError):
    message = "insufficient funds for gas * price + value"


class ReplacementUnderpriced(MempoolError):
    message = "replacement transaction underpriced"


class AccountLimitExceeded(MempoolError):
    message = "account limit exceeded"


class TxPoolFull(MempoolError):
    message = "txpool is full"


class FutureReplacePending(TxPoolFull):
    """The pool is full and a gapped (queued) tx could only get in by evicting a pending one."""

    message = "future transaction tries to replace pending"
