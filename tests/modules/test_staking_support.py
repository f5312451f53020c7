"""Test harness for the staking module (no tests here): a fake py-evm computation and a chain.

``Chain.call`` runs ``StakingModule.__call__`` as py-evm would: the value moves to the module
first, the handler runs, and on ``Revert`` the harness checks that the module wrote nothing
(every rule is checked before writing) and then rolls the value back as py-evm does.
"""

from __future__ import annotations

from typing import Any

from eth.exceptions import Revert
from fake_evm import FakeComputation, FakeState, computation_for

from cybermiles.chain.params import Params
from cybermiles.crypto.keccak import keccak256
from cybermiles.modules.addresses import STAKING
from cybermiles.modules.framework.block import BlockInfo, DoubleSign
from cybermiles.modules.params import write_params
from cybermiles.modules.staking import lifecycle
from cybermiles.modules.staking.module import StakingModule
from cybermiles.modules.staking.state import StakingState

CMT = 10**18
WAD = 10**18
DESC = ("node", "https://example.org", "Earth", "ops@example.org", "a validator")

# Small, test-friendly parameters (min stake 1 CMT, short unbonding and jail).
TEST_PARAMS = Params().replace(
    min_staking_amount=1 * CMT,
    unstake_waiting_period=10,
    jail_period=20,
    epoch_blocks=5,
    max_vals=3,
    backup_vals=2,
)


def account(n: int) -> bytes:
    """A distinct 20-byte address; the order of ``n`` is the address order."""
    return (0xA0 << 152 | n).to_bytes(20, "big")


def pub_key(n: int) -> bytes:
    return keccak256(b"pub" + n.to_bytes(4, "big"))


class Chain:
    """A staking module over a ``FakeState`` with a block number and end-of-block driving."""

    def __init__(self, params: Params = TEST_PARAMS) -> None:
        self.state = FakeState()
        self.params = params
        self.module = StakingModule()
        write_params(self.state, params)

    # -- blocks
    @property
    def number(self) -> int:
        return self.state.execution_context.block_number

    def set_params(self, params: Params) -> None:
        self.params = params
        write_params(self.state, params)

    def end_block(
        self,
        fees: int = 0,
        signers: frozenset[bytes] | None = None,
        evidence: tuple[DoubleSign, ...] = (),
        elect: bool = True,
    ) -> None:
        """End the current block (fees arrive in the module's balance first) and open the next."""
        self.state.set_balance(STAKING, self.state.get_balance(STAKING) + fees)
        info = BlockInfo(self.number, 0, b"\x11" * 32, fees, signers, evidence)
        lifecycle.end_block(self.state, info, self.params)
        if elect and lifecycle.should_elect(self.number, self.params):
            lifecycle.elect(self.state, self.params, keccak256(self.number.to_bytes(8, "big")))
        self.state.execution_context.block_number += 1

    def elect(self, beacon: bytes = bytes(32)) -> None:
        lifecycle.elect(self.state, self.params, beacon)

    # -- calls
    def fund(self, who: bytes, amount: int) -> None:
        self.state.set_balance(who, self.state.get_balance(who) + amount)

    def call(
        self, sender: bytes, name: str, *args: Any, value: int = 0, static: bool = False
    ) -> FakeComputation:
        """Call ``name(args)``; raises ``Revert`` (state writes checked absent, value back)."""
        data = StakingModule.calldata(name, *args)
        storage_before = dict(self.state.storage)
        balances_before = dict(self.state.balances)
        if value:
            have = self.state.get_balance(sender)
            assert have >= value, "test funds the sender first"
            self.state.set_balance(sender, have - value)
            self.state.set_balance(STAKING, self.state.get_balance(STAKING) + value)
        computation = computation_for(
            self.module, self.state, sender, data, value=value, static=static
        )
        try:
            self.module(computation)
        except Revert:
            assert self.state.storage == storage_before, f"{name} wrote before reverting"
            self.state.balances = balances_before
            raise
        return computation

    def view(self, name: str, *args: Any) -> Any:
        from eth_abi import decode

        spec = StakingModule.spec(name)
        out = decode(list(spec.outputs), self.call(account(0), name, *args, static=True).output)
        return out if len(out) > 1 else out[0]

    def declare(
        self,
        owner: bytes,
        max_amount: int,
        comp_rate: int = 2 * WAD // 10,
        key: bytes | None = None,
        description: tuple[str, ...] = DESC,
    ) -> FakeComputation:
        self_stake = max_amount * self.params.self_staking_ratio // 10_000
        self.fund(owner, self_stake)
        key = key if key is not None else keccak256(owner)
        return self.call(
            owner, "declareCandidacy", key, max_amount, comp_rate, description, value=self_stake
        )

    def delegate(self, delegator: bytes, candidate: bytes, amount: int) -> FakeComputation:
        self.fund(delegator, amount)
        return self.call(delegator, "delegate", candidate, value=amount)

    # -- state
    @property
    def staking(self) -> StakingState:
        return StakingState(self.state)

    def balance(self, who: bytes) -> int:
        return self.state.get_balance(who)


def staked_total(state: StakingState) -> int:
    """Σ shares of all delegations (checked equal to Σ candidate shares) + Σ pending unbonding."""
    total = 0
    for candidate in state.candidates():
        delegated = 0
        for delegator in state.delegators(candidate.owner):
            delegation = state.get_delegation(candidate.owner, delegator)
            assert delegation is not None and delegation.shares > 0
            delegated += delegation.shares
        assert delegated == candidate.shares, candidate.owner.hex()
        total += delegated
    return total + state.total_pending()
