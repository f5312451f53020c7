"""Governance over the real staking state: who may propose and vote, and the power counted."""

from __future__ import annotations

import pytest
from eth.exceptions import Revert
from fake_evm import FakeState, computation_for

from cybermiles.chain.params import CMT, Params
from cybermiles.modules.framework.block import BlockInfo
from cybermiles.modules.governance import lifecycle, queries
from cybermiles.modules.governance.module import GovernanceModule
from cybermiles.modules.params import read_params, write_params
from cybermiles.modules.staking.records import Candidate, Delegation
from cybermiles.modules.staking.state import StakingState

C1, C2 = b"\xc1" * 20, b"\xc2" * 20
D1 = b"\xd1" * 20
NOBODY = b"\xee" * 20
MODULE = GovernanceModule()


def call(backend: FakeState, sender: bytes, name: str, *args: object, value: int = 0) -> None:
    data = GovernanceModule.calldata(name, *args)
    computation = computation_for(MODULE, backend, sender, data, value=value)
    MODULE(computation)


def candidate(owner: bytes, shares: int, *, active: bool = True) -> Candidate:
    return Candidate(
        owner, owner + owner[:12], shares * 10, 0, shares, shares // 2,
        "", "", "", "", "", False, active, 0, 0, 0,
    )  # fmt: skip


def delegation(amount: int) -> Delegation:
    return Delegation(amount, 0, 0, 0, 0, 0)


@pytest.fixture
def backend() -> FakeState:
    """C1: 40 own + 20 from D1; C2: 30 own; an inactive C3 with 100 (no power)."""
    backend = FakeState()
    write_params(
        backend,
        Params(
            min_staking_amount=1 * CMT,
            validator_size_threshold=10_000,  # no power cap: power = shares
            proposal_deposit=10 * CMT,
            proposal_expire_period=5,
        ),
    )
    staking = StakingState(backend)
    staking.put_candidate(candidate(C1, 60 * CMT))
    staking.put_delegation(C1, C1, delegation(40 * CMT))
    staking.put_delegation(C1, D1, delegation(20 * CMT))
    staking.put_candidate(candidate(C2, 30 * CMT))
    staking.put_delegation(C2, C2, delegation(30 * CMT))
    c3 = b"\xc3" * 20
    staking.put_candidate(candidate(c3, 100 * CMT, active=False))
    staking.put_delegation(c3, c3, delegation(100 * CMT))
    for account in (C1, C2, D1, NOBODY):
        backend.set_balance(account, 1000 * CMT)
    return backend


def propose(backend: FakeState, sender: bytes) -> None:
    backend.set_balance(sender, backend.get_balance(sender) - 10 * CMT)
    backend.set_balance(MODULE.address, backend.get_balance(MODULE.address) + 10 * CMT)
    call(backend, sender, "proposeText", "t", "x", value=10 * CMT)


def end_block(backend: FakeState) -> None:
    number = backend.execution_context.block_number
    lifecycle.end_block(backend, BlockInfo(number, 0, b"\0" * 32, 0), read_params(backend))
    backend.execution_context.block_number += 1


def test_delegators_and_candidates_may_propose_and_vote(backend: FakeState) -> None:
    propose(backend, D1)
    call(backend, C2, "vote", 1, 0)
    with pytest.raises(Revert, match="no stake"):
        call(backend, NOBODY, "vote", 1, 0)
    with pytest.raises(Revert, match="no stake"):
        propose(backend, NOBODY)


def test_real_power_decides(backend: FakeState) -> None:
    propose(backend, C1)
    call(backend, C1, "vote", 1, 0)  # 60 of 90 counted for yes: 180 >= 180, early pass
    call(backend, D1, "vote", 1, 1)  # but D1 overrides for its 20: yes 40, no 20
    end_block(backend)
    (shown,) = queries.proposals(backend, read_params(backend))
    assert shown["result"] == "Voting"
    assert shown["votes"] == {"yes": str(40 * CMT), "no": str(20 * CMT), "abstain": "0"}
    call(backend, C2, "vote", 1, 0)  # yes 70 of 90: passes
    end_block(backend)
    (shown,) = queries.proposals(backend, read_params(backend))
    assert shown["result"] == "Approved"
    assert shown["votes"]["yes"] == str(70 * CMT)
    assert backend.get_balance(C1) == 1000 * CMT
