"""CyberMiles node: an Ethereum-compatible DPoS + BFT chain for e-commerce.

Layers (one package each; dependencies point downward only)::

    cli/        `cmt` commands
    rpc/        JSON-RPC server
    node/       config, wiring, lifecycle, block producer
    mempool/    transaction admission and ordering
    execution/  block executor: fees, plain-transfer fast path, py-evm for contracts
    state/      flat account/storage store, journal, Merkle-Patricia trie
    chain/      genesis, params, transactions, headers, receipts, block store
    crypto/     keccak, secp256k1, addresses
"""

import os

# eth_hash picks pycryptodome over safe-pysha3 unless told otherwise; pysha3 is 5-10x faster.
# This must run before anything imports eth_hash (py-evm, eth_utils, rlp users).
os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")

__version__ = "0.1.0"
