"""The staking module's end of block and election.

``end_block`` runs at the end of block ``h``, after its transactions, in this order:

1. double-sign evidence (``slashing.punish_double_signs``);
2. downtime of the current validators (``slashing.track_downtime``);
3. rewards: mint + the block's fees (``rewards.distribute_rewards``);
4. matured unbonding paid back (``bonding.release_matured``).

``elect`` runs at genesis and at the end of blocks with ``h % epoch_blocks == 0``
(``should_elect``), after governance, with ``beacon_for(parent hash)``.
"""

from __future__ import annotations

from cybermiles.chain.params import Params
from cybermiles.modules.framework.block import BlockInfo
from cybermiles.modules.framework.store import Backend
from cybermiles.modules.staking.bonding import release_matured
from cybermiles.modules.staking.power import elect_sets, power_table
from cybermiles.modules.staking.rewards import distribute_rewards
from cybermiles.modules.staking.slashing import punish_double_signs, track_downtime
from cybermiles.modules.staking.state import StakingState


def end_block(backend: Backend, info: BlockInfo, params: Params) -> None:
    """The staking module's work at the end of block ``info.number`` (see above)."""
    state = StakingState(backend)
    punish_double_signs(state, info, params)
    track_downtime(state, info, params)
    distribute_rewards(state, info, params)
    release_matured(state, info.number)


def should_elect(number: int, params: Params) -> bool:
    """True at the end of a block closing an epoch: ``number % epoch_blocks == 0``."""
    return number % params.epoch_blocks == 0


def elect(backend: Backend, params: Params, beacon: bytes) -> None:
    """Elect the validators (top ``max_vals``) and draw the backups with ``beacon``.

    Validators that leave the set have their downtime count reset.
    """
    state = StakingState(backend)
    table = power_table(backend, params)
    validators, backups = elect_sets(table.candidates, params.max_vals, params.backup_vals, beacon)
    for owner in state.validators():
        if owner in validators:
            continue
        candidate = state.get_candidate(owner)
        if candidate is not None and candidate.missed_blocks:
            state.put_candidate(candidate.copy(missed_blocks=0))
    state.set_sets(validators, backups)
