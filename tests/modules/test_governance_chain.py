"""Governance on a real ``Blockchain``: transactions through py-evm, the modules' end of block,
and the node stopping before a passed upgrade's height."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_harness import Chain, address_of, key, make_genesis, validator

from cybermiles.chain.params import CMT
from cybermiles.modules.addresses import COMMUNITY_POOL, GOVERNANCE
from cybermiles.modules.governance.module import GovernanceModule
from cybermiles.node.blockchain import UpgradeRequired

DEPOSIT = 10 * CMT
OWNER, DELEGATOR, OUTSIDER = key(0), key(1), key(2)


@pytest.fixture
def chain(tmp_path: Path):
    genesis = make_genesis(
        validators=[
            validator(
                OWNER,
                max_amount=100_000 * CMT,
                delegations=[(address_of(DELEGATOR), 5_000 * CMT)],
            )
        ],
        funded={address_of(k): 10**6 * CMT for k in (OWNER, DELEGATOR, OUTSIDER)},
        params={"proposal_deposit": DEPOSIT, "proposal_expire_period": 20},
    )
    chain = Chain(tmp_path / "data", genesis)
    yield chain
    chain.close()


def send(chain: Chain, sender, name: str, *args: object, value: int = 0) -> int:
    data = GovernanceModule.calldata(name, *args)
    return chain.send(sender, GOVERNANCE, data, value=value).status


def test_param_change_passes_and_applies(chain: Chain) -> None:
    assert send(chain, OUTSIDER, "proposeChangeParam", "max_vals", 7, 0, value=DEPOSIT) == 0
    assert send(chain, DELEGATOR, "proposeChangeParam", "max_vals", 7, 0, value=DEPOSIT) == 1
    assert chain.balance(GOVERNANCE) == DEPOSIT
    assert chain.view(GovernanceModule, "proposal", 1)[2] == 0  # voting
    assert send(chain, OWNER, "vote", 1, 0) == 1  # the owner's vote carries the delegator's
    kind, _, status, *_, yes, no, abstain = chain.view(GovernanceModule, "proposal", 1)
    assert (kind, status, no, abstain) == (1, 1, 0, 0)
    assert yes > 0
    assert chain.view(GovernanceModule, "param", "max_vals") == 7
    assert chain.balance(GOVERNANCE) == 0


def test_transfer_from_the_pool(chain: Chain) -> None:
    for _ in range(3):
        chain.block()
    pool = chain.balance(COMMUNITY_POOL)
    assert pool > 0  # the pool's part of every block's award
    target = address_of(OUTSIDER)
    before = chain.balance(target)
    send(chain, OWNER, "proposeTransferFund", target, pool // 2, "grant", value=DEPOSIT)
    assert send(chain, OWNER, "vote", 1, 0) == 1
    assert chain.view(GovernanceModule, "proposal", 1)[2] == 1
    assert chain.balance(target) == before + pool // 2


def test_node_stops_before_a_passed_upgrade(chain: Chain) -> None:
    height = chain.height + 4
    assert send(chain, OWNER, "proposeUpgrade", "next", "999.0.0", height, value=DEPOSIT) == 1
    assert send(chain, OWNER, "vote", 1, 0) == 1
    while chain.height + 1 < height:
        chain.block()
    with pytest.raises(UpgradeRequired, match=r"999\.0\.0"):
        chain.block()
    chain.reopen()
    with pytest.raises(UpgradeRequired):
        chain.block()
