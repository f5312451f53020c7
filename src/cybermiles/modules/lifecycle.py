"""The modules' part of genesis and of every block's end.

Genesis: the module accounts exist from block 0 (nonce 1 and a one-byte code, so they are never
"empty" under EIP-161 and ``extcodesize`` is non-zero), the parameters are written to the state,
and the genesis validators are declared with their stake.

End of block ``h``, after its transactions, in this order:
1. staking: evidence, downtime, rewards (mint + the block's fees), matured unbonding;
2. governance: tallies, deposits, transfers, parameter changes due at ``h``, upgrade plans;
3. the election, when ``h`` closes an epoch, with the beacon of the block: ``info.beacon``
   (the random beacon, docs/beacon.md) or, when the caller supplies none, the placeholder
   ``beacon_for(parent hash)``.
Parameter changes made at step 2 govern the next block (they are read again before it).
"""

from __future__ import annotations

from collections.abc import Iterator

from cybermiles.chain.genesis import Genesis
from cybermiles.modules.addresses import COMMUNITY_POOL, GOVERNANCE, MODULE_CODE, STAKING
from cybermiles.modules.framework.block import BlockInfo
from cybermiles.modules.framework.store import Backend
from cybermiles.modules.governance import lifecycle as governance
from cybermiles.modules.params import read_params, write_params
from cybermiles.modules.staking import lifecycle as staking
from cybermiles.modules.staking.beacon import beacon_for
from cybermiles.modules.staking.genesis import init_staking


def genesis_accounts() -> Iterator[tuple[bytes, int, bytes]]:
    """``(address, nonce, code)`` of the accounts the modules need from block 0."""
    yield STAKING, 1, MODULE_CODE
    yield GOVERNANCE, 1, MODULE_CODE
    yield COMMUNITY_POOL, 1, b""


def init_genesis(backend: Backend, genesis: Genesis) -> None:
    """Write the parameters and declare the genesis validators (after ``alloc`` is loaded)."""
    write_params(backend, genesis.params)
    alloc_supply = sum(account.balance for account in genesis.alloc.values())
    init_staking(backend, genesis.validators, genesis.params, alloc_supply)


def end_block(backend: Backend, info: BlockInfo) -> None:
    """Run the modules' end of block ``info.number`` (see the module docstring)."""
    params = read_params(backend)
    staking.end_block(backend, info, params)
    governance.end_block(backend, info, params)
    if staking.should_elect(info.number, params):
        beacon = info.beacon or beacon_for(info.parent_hash)
        staking.elect(backend, read_params(backend), beacon)
