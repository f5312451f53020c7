"""The genesis validators: candidates declared at block 0 with their stake.

Each genesis validator becomes an active, unverified candidate with self-stake
``max_amount * self_staking_ratio // 10000`` and its listed delegations. All that stake is
created in the module's balance, ``total_supply`` is ``alloc_supply`` plus it, and the first
election runs with ``beacon_for(bytes(32))``. A validator's ``beacon_commitment``, if given, is
its random-beacon commitment, live from block 1 with ``ONION_LENGTH`` reveals.
"""

from __future__ import annotations

from cybermiles.chain.genesis import GenesisValidator
from cybermiles.chain.params import WAD, Params
from cybermiles.crypto.address import to_checksum
from cybermiles.modules.addresses import STAKING
from cybermiles.modules.framework.store import Backend
from cybermiles.modules.staking.beacon import beacon_for
from cybermiles.modules.staking.beacon_commitments import ONION_LENGTH
from cybermiles.modules.staking.bonding import bond
from cybermiles.modules.staking.lifecycle import elect
from cybermiles.modules.staking.module import self_stake_for
from cybermiles.modules.staking.records import Candidate
from cybermiles.modules.staking.state import BeaconCommitment, StakingState

GENESIS_HEIGHT = 0


def check_validators(validators: tuple[GenesisValidator, ...], params: Params) -> None:
    """Raise ``ValueError`` naming the validator for any rule a declaration would break."""
    owners: set[bytes] = set()
    keys: set[bytes] = set()
    for v in validators:
        who = f"genesis validator {to_checksum(v.address)} ({v.name or 'unnamed'})"
        if v.address in owners:
            raise ValueError(f"{who}: declared twice")
        if len(v.pub_key) != 32 or v.pub_key == bytes(32):
            raise ValueError(f"{who}: pub_key must be 32 non-zero bytes")
        if v.pub_key in keys:
            raise ValueError(f"{who}: pub_key already used by another validator")
        if v.max_amount <= 0:
            raise ValueError(f"{who}: max_amount must be positive")
        if not 0 <= v.comp_rate <= WAD:
            raise ValueError(f"{who}: comp_rate {v.comp_rate} out of [0, 1e18]")
        delegators = [d for d, _ in v.delegations]
        if len(set(delegators)) != len(delegators):
            raise ValueError(f"{who}: a delegator is listed twice")
        if any(amount <= 0 for _, amount in v.delegations):
            raise ValueError(f"{who}: delegation amounts must be positive")
        if v.beacon_commitment and (
            len(v.beacon_commitment) != 32 or v.beacon_commitment == bytes(32)
        ):
            raise ValueError(f"{who}: beacon_commitment must be 32 non-zero bytes")
        stake = self_stake_for(v.max_amount, params) + sum(a for _, a in v.delegations)
        if stake > v.max_amount:
            raise ValueError(
                f"{who}: self-stake plus delegations {stake} above max_amount {v.max_amount}"
            )
        owners.add(v.address)
        keys.add(v.pub_key)


def init_staking(
    backend: Backend,
    validators: tuple[GenesisValidator, ...],
    params: Params,
    alloc_supply: int,
) -> None:
    """Declare ``validators`` at height 0, create their stake and run the first election."""
    check_validators(validators, params)
    state = StakingState(backend)
    staked = 0
    for v in validators:
        self_stake = self_stake_for(v.max_amount, params)
        candidate = Candidate(
            v.address,
            v.pub_key,
            v.max_amount,
            v.comp_rate,
            0,
            self_stake,
            *v.description,
            False,
            True,
            0,
            GENESIS_HEIGHT,
            0,
        )
        if self_stake:
            candidate = bond(state, candidate, v.address, self_stake, GENESIS_HEIGHT)
        for delegator, amount in v.delegations:
            candidate = bond(state, candidate, delegator, amount, GENESIS_HEIGHT)
        state.put_candidate(candidate)
        if v.beacon_commitment:
            state.set_beacon_commitment(
                v.address, BeaconCommitment(v.beacon_commitment, ONION_LENGTH, b"", 0)
            )
        staked += candidate.shares
    state.store.mint(STAKING, staked)
    state.set_total_supply(alloc_supply + staked)
    elect(backend, params, beacon_for(bytes(32)))
