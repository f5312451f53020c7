"""Transaction pool: admission with geth's error messages, free-tx quota, ordering, eviction.

Public API::

    Mempool(config, state, on_added=None)   the pool (see ``pool``)
    MempoolConfig                           its limits (see ``config``)
    StateReader                             the head-state protocol it reads (see ``api``)
    MempoolError and its leaves             refusals (see ``errors``)
    effective_gas_price(tx)                 the one price the pool uses (see ``pricing``)
"""

from .api import StateReader
from .config import MempoolConfig
from .errors import (
    AccountLimitExceeded,
    AlreadyKnown,
    ExceedsBlockGasLimit,
    FloorDataGasTooLow,
    FutureReplacePending,
    InsufficientFunds,
    IntrinsicGasTooLow,
    MempoolError,
    NonceTooLow,
    OversizedData,
    ReplacementUnderpriced,
    TipAboveFeeCap,
    TxPoolFull,
    Underpriced,
)
from .pool import Mempool
from .pricing import effective_gas_price

__all__ = [
    "AccountLimitExceeded",
    "AlreadyKnown",
    "ExceedsBlockGasLimit",
    "FloorDataGasTooLow",
    "FutureReplacePending",
    "InsufficientFunds",
    "IntrinsicGasTooLow",
    "Mempool",
    "MempoolConfig",
    "MempoolError",
    "NonceTooLow",
    "OversizedData",
    "ReplacementUnderpriced",
    "StateReader",
    "TipAboveFeeCap",
    "TxPoolFull",
    "Underpriced",
    "effective_gas_price",
]
