"""eth_getProof (EIP-1186): Merkle proofs of an account and some of its storage slots.

Rules (geth's shapes):

* eth_getProof(address, storageKeys, block="latest") answers ``{address, accountProof,
  balance, codeHash, nonce, storageHash, storageProof: [{key, value, proof}]}``; proofs are
  lists of RLP-encoded trie nodes from the root toward ``keccak(address)`` /
  ``keccak(slot32)``, the account proof against the block's ``stateRoot``, each storage proof
  against ``storageHash``. They prove inclusion, or absence (an absent account or slot).
* An absent account answers balance 0, nonce 0, codeHash ``keccak("")`` and storageHash the
  empty trie root. For an absent account or an empty storage trie every storage proof is ``[]``
  with value 0.
* Storage keys are hex of at most 32 bytes (``rpc.params.storage_slot``); at most
  :data:`MAX_KEYS` of them (-32602 beyond). Each result ``key`` echoes its request key as geth
  does: 32-byte keys as 32 bytes of data, shorter ones as a quantity (``"0x01"`` -> ``"0x1"``).
* Only the head's tries are kept in memory: any tag (latest, pending, safe, finalized), number
  or hash naming the head is served; another known block is -32000 "proofs are only available
  for the latest block (N)"; an unknown one is -32000 "header not found", as other state reads.
  The proofs are built under the chain's write lock (``Blockchain.prove``), so they all come
  from one head even while the producer commits blocks.
"""

from __future__ import annotations

from typing import Any

from cybermiles.crypto.keccak import EMPTY_KECCAK
from cybermiles.rpc import format as fmt
from cybermiles.rpc import lookup
from cybermiles.rpc import params as p
from cybermiles.rpc.errors import ParamError, ServerError
from cybermiles.rpc.registry import MethodTable
from cybermiles.state.trie import BLANK_ROOT

methods = MethodTable()

MAX_KEYS = 1024  # geth's maxGetProofKeys


class ProofUnavailable(ServerError):
    """The request names a block other than the head."""

    def __init__(self, head: int) -> None:
        super().__init__(f"proofs are only available for the latest block ({head})")


def parse_storage_keys(value: Any, name: str) -> list[tuple[int, str]]:
    """Parse the storage keys into ``(slot, key as echoed in the result)`` pairs."""
    if not isinstance(value, list):
        raise ParamError(name, "expected an array of storage keys")
    if len(value) > MAX_KEYS:
        raise ParamError(name, f"too many keys, max {MAX_KEYS}")
    keys = []
    for index, item in enumerate(value):
        slot = p.storage_slot(item, f"{name}.{index}")
        digits = len(item) - 2  # storage_slot checked the 0x prefix and the hex digits
        keys.append((slot, fmt.word(slot) if (digits + 1) // 2 == 32 else fmt.quantity(slot)))
    return keys


def _proof(nodes: list[bytes]) -> list[str]:
    return [fmt.data(node) for node in nodes]


@methods.method("eth_getProof")
def get_proof(node: Any, address: Any, storage_keys: Any, block: Any = None) -> fmt.Json:
    addr = p.address(address, "address")
    keys = parse_storage_keys(storage_keys, "storage_keys")
    wanted = lookup.state_height(node, p.block_ref(block, "block"))  # None: a head tag
    if wanted is not None and wanted != (head := lookup.head_number(node)):
        raise ProofUnavailable(head)  # fail fast, without waiting for the write lock
    head, account_proof, account, storage = node.chain.prove(addr, [slot for slot, _ in keys])
    if wanted is not None and wanted != head:  # the head moved on while we waited
        raise ProofUnavailable(head)
    return {
        "address": fmt.address(addr),
        "accountProof": _proof(account_proof),
        "balance": fmt.quantity(0 if account is None else account.balance),
        "codeHash": fmt.data(EMPTY_KECCAK if account is None else account.code_hash),
        "nonce": fmt.quantity(0 if account is None else account.nonce),
        "storageHash": fmt.data(BLANK_ROOT if account is None else account.storage_root),
        "storageProof": [
            {"key": key, "value": fmt.quantity(value), "proof": _proof(proof)}
            for (_, key), (value, proof) in zip(keys, storage, strict=True)
        ],
    }
