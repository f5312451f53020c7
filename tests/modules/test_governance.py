"""The governance module through its ABI (as py-evm calls it) and its end of block."""

from __future__ import annotations

from typing import Any

import pytest
from eth.exceptions import Revert
from eth_abi import decode
from fake_evm import FakeComputation, FakeState, computation_for

from cybermiles.chain.params import CMT, Params
from cybermiles.crypto.address import to_checksum
from cybermiles.modules.addresses import COMMUNITY_POOL, GOVERNANCE
from cybermiles.modules.framework.block import BlockInfo
from cybermiles.modules.framework.module import event_topic, revert_data
from cybermiles.modules.governance import lifecycle, queries, stake, state
from cybermiles.modules.governance.module import GovernanceModule
from cybermiles.modules.governance.upgrade import UpgradePlan, pending_upgrade
from cybermiles.modules.params import read_params, write_params
from cybermiles.modules.staking.power import PowerTable

YES, NO, ABSTAIN = 0, 1, 2
VOTING, PASSED, REJECTED, EXPIRED, FAILED = range(5)
C1, C2 = b"\xc1" * 20, b"\xc2" * 20
D1, D2 = b"\xd1" * 20, b"\xd2" * 20
NOBODY = b"\xee" * 20
TARGET = b"\x7a" * 20
DEPOSIT = 100 * CMT
PERIOD = 10

MODULE = GovernanceModule()


class Chain:
    """Blocks of calls then ``end_block``; power from a fixed table, not staking."""

    def __init__(self, powers: dict[bytes, dict[bytes, int]], **params: int) -> None:
        self.state = FakeState()
        settings = {"proposal_expire_period": PERIOD, "proposal_deposit": DEPOSIT, **params}
        write_params(self.state, Params(**settings))
        self.set_power(powers)
        for account in (C1, C2, D1, D2, NOBODY):
            self.state.set_balance(account, 10_000 * CMT)
        self.last: FakeComputation | None = None

    def set_power(self, powers: dict[bytes, dict[bytes, int]]) -> None:
        candidates = {c: sum(d.values()) for c, d in powers.items()}
        self.table = PowerTable(candidates, powers, sum(candidates.values()))
        self.stakers = set(powers) | {d for ds in powers.values() for d in ds}

    @property
    def number(self) -> int:
        return self.state.execution_context.block_number

    def call(self, sender: bytes, name: str, *args: Any, value: int = 0, static: bool = False):
        spec = GovernanceModule.spec(name)
        saved = dict(self.state.storage), dict(self.state.balances)
        if value:  # py-evm moves the value before the precompile runs
            self.state.set_balance(sender, self.state.get_balance(sender) - value)
            self.state.set_balance(GOVERNANCE, self.state.get_balance(GOVERNANCE) + value)
        data = GovernanceModule.calldata(name, *args)
        computation = computation_for(MODULE, self.state, sender, data, value=value, static=static)
        self.last = computation
        try:
            MODULE(computation)
        except Revert:
            self.state.storage, self.state.balances = saved  # the EVM reverts the call
            raise
        assert computation.gas_used == spec.gas
        result = decode(list(spec.outputs), computation.output) if spec.outputs else ()
        return result[0] if len(result) == 1 else result

    def propose_text(self, sender: bytes = C1, value: int = DEPOSIT) -> int:
        return self.call(sender, "proposeText", "title", "text", value=value)

    def end_block(self) -> None:
        info = BlockInfo(self.number, 0, b"\x00" * 32, 0)
        lifecycle.end_block(self.state, info, read_params(self.state))
        self.state.execution_context.block_number += 1

    def run_to(self, number: int) -> None:
        """End blocks until the next block is ``number``."""
        while self.number < number:
            self.end_block()

    def status(self, proposal_id: int) -> int:
        return self.call(NOBODY, "proposal", proposal_id, static=True)[2]


@pytest.fixture
def fake_staking(monkeypatch: pytest.MonkeyPatch):
    chains: list[Chain] = []

    def make(powers: dict[bytes, dict[bytes, int]] | None = None, **params: int) -> Chain:
        chain = Chain(powers or {C1: {C1: 40, D1: 20}, C2: {C2: 30, D2: 10}}, **params)
        chains.append(chain)
        return chain

    monkeypatch.setattr(stake, "power_table", lambda backend, params: chains[-1].table)
    monkeypatch.setattr(stake, "has_stake", lambda backend, a: a in chains[-1].stakers)
    return make


# -- proposing
def test_propose_holds_the_deposit_and_logs(fake_staking) -> None:
    chain = fake_staking()
    assert chain.propose_text(value=DEPOSIT + 5) == 1
    assert chain.state.get_balance(GOVERNANCE) == DEPOSIT + 5
    ((address, topics, data),) = chain.last.logs
    assert address == GOVERNANCE
    assert topics == [
        event_topic("Proposed(uint256,address,uint8,uint256)"),
        1,
        int.from_bytes(C1, "big"),
    ]
    assert decode(["uint8", "uint256"], data) == (3, 1 + PERIOD)
    assert chain.propose_text(D2) == 2
    assert chain.call(NOBODY, "proposal", 2, static=True) == (
        3,
        "0x" + D2.hex(),
        VOTING,
        1,
        1 + PERIOD,
        0,
        0,
        0,
    )


def test_proposal_view_fields(fake_staking) -> None:
    chain = fake_staking()
    chain.propose_text()
    chain.call(D1, "vote", 1, NO)
    kind, proposer, status, start, expire, yes, no, abstain = chain.call(NOBODY, "proposal", 1)
    assert (kind, status, start, expire) == (3, VOTING, 1, 1 + PERIOD)
    assert proposer == "0x" + C1.hex()
    assert (yes, no, abstain) == (0, 20, 0)  # live tally while voting
    assert chain.last.gas_used == 2_000


def test_proposer_without_stake_reverts(fake_staking) -> None:
    chain = fake_staking()
    with pytest.raises(Revert, match="proposer has no stake"):
        chain.propose_text(NOBODY)
    assert chain.last.output == revert_data(
        "governance: the proposer has no stake (only candidates and delegators propose)"
    )
    assert chain.state.get_balance(NOBODY) == 10_000 * CMT
    assert state.proposal_count(chain.state) == 0


def test_deposit_below_the_parameter_reverts(fake_staking) -> None:
    chain = fake_staking()
    with pytest.raises(Revert, match=f"deposit {DEPOSIT - 1} is below proposal_deposit"):
        chain.propose_text(value=DEPOSIT - 1)
    with pytest.raises(Revert, match="is below proposal_deposit"):
        chain.propose_text(value=0)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("no_such_param", 1, "unknown parameter 'no_such_param'"),
        ("max_code_size", 30_000, "parameter 'max_code_size' is not governable"),
        ("free_tx_window", 10, "parameter 'free_tx_window' is not governable"),
        ("max_vals", 0, r"max_vals: 0 is out of range \[1, 1000\]"),
        ("slash_enabled", 2, r"slash_enabled: 2 is out of range \[0, 1\]"),
        ("verifier", 2**160, "verifier: .* is out of range"),
    ],
)
def test_change_param_is_checked_when_proposed(fake_staking, name, value, reason) -> None:
    chain = fake_staking()
    with pytest.raises(Revert, match=reason):
        chain.call(C1, "proposeChangeParam", name, value, 5, value=DEPOSIT)
    assert chain.state.get_balance(GOVERNANCE) == 0


def test_upgrade_height_must_be_in_the_future(fake_staking) -> None:
    chain = fake_staking()
    chain.run_to(5)
    with pytest.raises(Revert, match="height 5 is not after the current block 5"):
        chain.call(C1, "proposeUpgrade", "up", "0.2.0", 5, value=DEPOSIT)
    with pytest.raises(Revert, match="version is empty"):
        chain.call(C1, "proposeUpgrade", "up", "", 50, value=DEPOSIT)


def test_transfer_of_nothing_reverts(fake_staking) -> None:
    chain = fake_staking()
    with pytest.raises(Revert, match="amount must be positive"):
        chain.call(C1, "proposeTransferFund", TARGET, 0, "why", value=DEPOSIT)


def test_static_call_cannot_propose(fake_staking) -> None:
    chain = fake_staking()
    with pytest.raises(Revert, match="state change in a static call"):
        chain.call(C1, "proposeText", "t", "x", static=True)


# -- voting
def test_vote_logs_and_last_vote_counts(fake_staking) -> None:
    chain = fake_staking()
    chain.propose_text()
    chain.call(D1, "vote", 1, YES)
    ((_, topics, data),) = chain.last.logs
    assert topics == [event_topic("Voted(uint256,address,uint8)"), 1, int.from_bytes(D1, "big")]
    assert decode(["uint8"], data) == (YES,)
    assert chain.last.gas_used == 30_000
    chain.call(D1, "vote", 1, ABSTAIN)
    assert chain.call(NOBODY, "proposal", 1)[5:] == (0, 0, 20)


def test_vote_by_an_account_without_stake_reverts(fake_staking) -> None:
    chain = fake_staking()
    chain.propose_text()
    with pytest.raises(Revert, match="the voter has no stake"):
        chain.call(NOBODY, "vote", 1, YES)


def test_vote_on_an_unknown_proposal_reverts(fake_staking) -> None:
    chain = fake_staking()
    with pytest.raises(Revert, match=r"governance\.vote: unknown proposal 1"):
        chain.call(C1, "vote", 1, YES)
    with pytest.raises(Revert, match=r"governance\.proposal: unknown proposal 9"):
        chain.call(C1, "proposal", 9)


def test_vote_with_a_bad_answer_reverts(fake_staking) -> None:
    chain = fake_staking()
    chain.propose_text()
    with pytest.raises(Revert, match=r"answer 3 is not 0 \(yes\), 1 \(no\) or 2 \(abstain\)"):
        chain.call(C1, "vote", 1, 3)


def test_vote_after_expiry_reverts(fake_staking) -> None:
    chain = fake_staking()
    chain.propose_text()
    chain.run_to(1 + PERIOD)
    chain.call(C1, "vote", 1, NO)  # the last block of the voting period still counts
    chain.end_block()
    with pytest.raises(Revert, match="proposal 1 is closed"):
        chain.call(C1, "vote", 1, YES)


def test_vote_after_decision_reverts(fake_staking) -> None:
    chain = fake_staking()
    chain.propose_text()
    chain.call(C1, "vote", 1, YES)
    chain.call(C2, "vote", 1, YES)
    chain.end_block()
    assert chain.status(1) == PASSED
    with pytest.raises(Revert, match=r"proposal 1 is closed \(status passed"):
        chain.call(D1, "vote", 1, NO)


# -- decisions and deposits (total power 100: C1 60, C2 40)
def test_early_pass_returns_the_deposit(fake_staking) -> None:
    chain = fake_staking()
    chain.propose_text()
    chain.call(C1, "vote", 1, YES)  # 60 < 66.7
    chain.end_block()
    assert chain.status(1) == VOTING
    chain.call(D2, "vote", 1, YES)  # 70 * 3 >= 200
    before = chain.state.get_balance(C1)
    chain.end_block()
    assert chain.status(1) == PASSED
    assert chain.state.get_balance(C1) == before + DEPOSIT
    assert chain.state.get_balance(GOVERNANCE) == 0
    assert chain.call(NOBODY, "proposal", 1)[5:] == (70, 0, 0)  # the deciding tally, kept
    assert state.get_votes(chain.state, 1) == {}
    assert state.active_ids(chain.state) == []


def test_pass_at_expiry_with_quorum(fake_staking) -> None:
    chain = fake_staking()
    chain.propose_text(D1)
    chain.call(C2, "vote", 1, YES)  # 40
    chain.call(D1, "vote", 1, NO)  # 20: 40*3 >= 60*2
    chain.run_to(1 + PERIOD)
    assert chain.status(1) == VOTING
    chain.end_block()
    assert chain.status(1) == PASSED
    assert chain.state.get_balance(D1) == 10_000 * CMT


def test_reject_at_expiry_returns_the_deposit(fake_staking) -> None:
    chain = fake_staking()
    chain.propose_text(D1)
    chain.call(C1, "vote", 1, NO)  # 60 no (D1 follows C1: it did not vote)
    chain.call(C2, "vote", 1, YES)
    chain.run_to(2 + PERIOD)
    assert chain.status(1) == REJECTED
    assert chain.call(NOBODY, "proposal", 1)[5:] == (40, 60, 0)
    assert chain.state.get_balance(D1) == 10_000 * CMT
    assert chain.state.get_balance(COMMUNITY_POOL) == 0


def test_abstain_alone_reaches_quorum_and_rejects(fake_staking) -> None:
    chain = fake_staking()
    chain.propose_text()
    chain.call(C1, "vote", 1, ABSTAIN)
    chain.run_to(2 + PERIOD)
    assert chain.status(1) == REJECTED


def test_expiry_without_quorum_keeps_the_deposit_for_the_pool(fake_staking) -> None:
    chain = fake_staking()
    chain.propose_text(D2)
    chain.call(D2, "vote", 1, YES)  # 10 * 3 < 100
    chain.run_to(2 + PERIOD)
    assert chain.status(1) == EXPIRED
    assert chain.state.get_balance(COMMUNITY_POOL) == DEPOSIT
    assert chain.state.get_balance(D2) == 10_000 * CMT - DEPOSIT
    assert chain.state.get_balance(GOVERNANCE) == 0


def test_power_is_read_at_each_tally(fake_staking) -> None:
    chain = fake_staking()
    chain.propose_text()
    chain.call(C1, "vote", 1, YES)
    chain.end_block()
    assert chain.status(1) == VOTING
    chain.set_power({C1: {C1: 40, D1: 30}, C2: {C2: 20, D2: 10}})  # C1 now holds 70 of 100
    chain.end_block()
    assert chain.status(1) == PASSED


# -- transfers
def test_passed_transfer_is_paid_from_the_pool(fake_staking) -> None:
    chain = fake_staking()
    chain.state.set_balance(COMMUNITY_POOL, 500 * CMT)
    pid = chain.call(C1, "proposeTransferFund", TARGET, 300 * CMT, "grant", value=DEPOSIT)
    chain.call(C1, "vote", pid, YES)
    chain.call(C2, "vote", pid, YES)
    chain.end_block()
    assert chain.status(pid) == PASSED
    assert chain.state.get_balance(TARGET) == 300 * CMT
    assert chain.state.get_balance(COMMUNITY_POOL) == 200 * CMT
    assert chain.call(NOBODY, "communityPool") == 200 * CMT


def test_transfer_fails_when_the_pool_is_short_and_never_touches_deposits(fake_staking) -> None:
    chain = fake_staking()
    chain.state.set_balance(COMMUNITY_POOL, 50 * CMT)
    chain.propose_text(D2)  # another deposit held by governance
    pid = chain.call(C1, "proposeTransferFund", TARGET, 60 * CMT, "grant", value=DEPOSIT)
    chain.call(C1, "vote", pid, YES)
    chain.call(C2, "vote", pid, YES)
    chain.end_block()
    assert chain.status(pid) == FAILED
    assert chain.state.get_balance(TARGET) == 0
    assert chain.state.get_balance(COMMUNITY_POOL) == 50 * CMT
    assert chain.state.get_balance(GOVERNANCE) == DEPOSIT  # proposal 1's, still voting
    assert chain.state.get_balance(C1) == 10_000 * CMT  # failed: the deposit came back


def test_two_transfers_in_one_block_are_paid_in_id_order(fake_staking) -> None:
    chain = fake_staking()
    chain.state.set_balance(COMMUNITY_POOL, 100 * CMT)
    first = chain.call(C1, "proposeTransferFund", TARGET, 70 * CMT, "a", value=DEPOSIT)
    second = chain.call(C2, "proposeTransferFund", D1, 70 * CMT, "b", value=DEPOSIT)
    for pid in (first, second):
        chain.call(C1, "vote", pid, YES)
        chain.call(C2, "vote", pid, YES)
    chain.end_block()
    assert (chain.status(first), chain.status(second)) == (PASSED, FAILED)
    assert chain.state.get_balance(COMMUNITY_POOL) == 30 * CMT


# -- parameter changes
def pass_now(chain: Chain, pid: int) -> None:
    chain.call(C1, "vote", pid, YES)
    chain.call(C2, "vote", pid, YES)


def test_param_change_applies_at_the_end_of_its_height(fake_staking) -> None:
    chain = fake_staking()
    pid = chain.call(C1, "proposeChangeParam", "max_vals", 21, 6, value=DEPOSIT)
    pass_now(chain, pid)
    chain.end_block()  # passes at the end of block 1
    assert chain.status(pid) == PASSED
    chain.run_to(6)  # blocks 1..5 ended
    assert read_params(chain.state).max_vals == 19
    assert chain.call(NOBODY, "param", "max_vals") == 19
    chain.end_block()  # block 6
    assert read_params(chain.state).max_vals == 21
    assert chain.call(NOBODY, "param", "max_vals") == 21
    assert state.scheduled_changes(chain.state) == []


def test_param_change_with_a_past_height_applies_when_it_passes(fake_staking) -> None:
    chain = fake_staking()
    chain.run_to(4)
    pid = chain.call(C1, "proposeChangeParam", "proposal_deposit", 5 * CMT, 2, value=DEPOSIT)
    chain.end_block()  # block 4: not passed yet
    assert read_params(chain.state).proposal_deposit == DEPOSIT
    pass_now(chain, pid)
    chain.end_block()  # block 5: passes and applies at once
    assert read_params(chain.state).proposal_deposit == 5 * CMT
    assert chain.propose_text(value=5 * CMT) == 2


def test_rejected_param_change_is_never_applied(fake_staking) -> None:
    chain = fake_staking()
    pid = chain.call(C1, "proposeChangeParam", "max_vals", 21, 3, value=DEPOSIT)
    chain.call(C1, "vote", pid, NO)
    chain.run_to(3 + PERIOD)
    assert chain.status(pid) == REJECTED
    assert read_params(chain.state).max_vals == 19


def test_param_changes_due_together_apply_in_proposal_order(fake_staking) -> None:
    chain = fake_staking()
    first = chain.call(C1, "proposeChangeParam", "backup_vals", 7, 4, value=DEPOSIT)
    second = chain.call(C2, "proposeChangeParam", "backup_vals", 9, 4, value=DEPOSIT)
    verifier = chain.call(
        C2, "proposeChangeParam", "verifier", int.from_bytes(D1, "big"), 4, value=DEPOSIT
    )
    for pid in (second, first, verifier):
        pass_now(chain, pid)
    chain.run_to(5)
    assert read_params(chain.state).backup_vals == 9
    assert read_params(chain.state).verifier == int.from_bytes(D1, "big")
    assert queries.params(chain.state)["verifier"] == to_checksum(D1)


# -- upgrades
def test_passed_upgrade_is_recorded(fake_staking) -> None:
    chain = fake_staking()
    assert pending_upgrade(chain.state) is None
    pid = chain.call(C1, "proposeUpgrade", "second", "0.2.0", 50, value=DEPOSIT)
    pass_now(chain, pid)
    chain.end_block()
    assert chain.status(pid) == PASSED
    assert pending_upgrade(chain.state) == UpgradePlan("second", "0.2.0", 50)


def test_upgrade_passing_at_or_after_its_height_fails(fake_staking) -> None:
    chain = fake_staking()
    pid = chain.call(C1, "proposeUpgrade", "late", "0.2.0", 5, value=DEPOSIT)
    chain.run_to(5)
    pass_now(chain, pid)
    chain.end_block()  # block 5 is made: too late to stop before it
    assert chain.status(pid) == FAILED
    assert pending_upgrade(chain.state) is None
    assert chain.state.get_balance(C1) == 10_000 * CMT


def test_upgrade_plans_stay_until_a_later_one_takes_effect(fake_staking) -> None:
    chain = fake_staking()
    v2 = chain.call(C1, "proposeUpgrade", "two", "0.2.0", 5, value=DEPOSIT)
    v3 = chain.call(C1, "proposeUpgrade", "three", "0.3.0", 8, value=DEPOSIT)
    pass_now(chain, v3)
    pass_now(chain, v2)
    chain.end_block()
    assert pending_upgrade(chain.state) == UpgradePlan("two", "0.2.0", 5)
    chain.run_to(7)  # past 5: a 0.1 node restarted here still sees the 0.2.0 plan
    assert pending_upgrade(chain.state) == UpgradePlan("two", "0.2.0", 5)
    chain.end_block()  # end of block 7: the 0.3.0 plan governs block 8
    assert pending_upgrade(chain.state) == UpgradePlan("three", "0.3.0", 8)


def test_a_later_plan_for_the_same_height_replaces_the_earlier(fake_staking) -> None:
    chain = fake_staking()
    first = chain.call(C1, "proposeUpgrade", "a", "0.2.0", 20, value=DEPOSIT)
    second = chain.call(C1, "proposeUpgrade", "b", "0.2.1", 20, value=DEPOSIT)
    pass_now(chain, first)
    chain.end_block()
    pass_now(chain, second)
    chain.end_block()
    assert pending_upgrade(chain.state) == UpgradePlan("b", "0.2.1", 20)


# -- views and queries
def test_param_and_pool_views(fake_staking) -> None:
    chain = fake_staking()
    chain.state.set_balance(COMMUNITY_POOL, 123)
    assert chain.call(NOBODY, "communityPool", static=True) == 123
    assert chain.call(NOBODY, "param", "proposal_deposit", static=True) == DEPOSIT
    with pytest.raises(Revert, match=r"governance\.param: unknown parameter 'nope'"):
        chain.call(NOBODY, "param", "nope")
    with pytest.raises(Revert, match="not payable"):
        chain.call(C1, "vote", 1, YES, value=1)


def test_query_proposals_json(fake_staking) -> None:
    chain = fake_staking()
    chain.state.set_balance(COMMUNITY_POOL, 10 * CMT)
    chain.call(C1, "proposeTransferFund", TARGET, 20 * CMT, "grant", value=DEPOSIT)
    chain.call(D1, "proposeChangeParam", "min_gas_price", 2 * 10**9, 30, value=DEPOSIT)
    chain.call(C2, "proposeUpgrade", "up", "0.2.0", 100, value=DEPOSIT)
    chain.call(D2, "proposeText", "hello", "world", value=DEPOSIT)
    pass_now(chain, 1)
    chain.call(D1, "vote", 2, NO)
    chain.end_block()
    listed = queries.proposals(chain.state, read_params(chain.state))
    assert [p["id"] for p in listed] == [1, 2, 3, 4]
    assert listed[0] == {
        "id": 1,
        "type": "transfer_fund",
        "proposer": to_checksum(C1),
        "block_height": 1,
        "expire_block_height": 1 + PERIOD,
        "result": "Failed",
        "deposit": str(DEPOSIT),
        "detail": {"to": to_checksum(TARGET), "amount": str(20 * CMT), "reason": "grant"},
        "votes": {"yes": "100", "no": "0", "abstain": "0"},
    }
    assert listed[1]["type"] == "change_param"
    assert listed[1]["result"] == "Voting"
    assert listed[1]["detail"] == {"name": "min_gas_price", "value": "2000000000", "height": 30}
    assert listed[1]["votes"] == {"yes": "0", "no": "20", "abstain": "0"}
    assert listed[2]["detail"] == {"name": "up", "version": "0.2.0", "height": 100}
    assert listed[3]["type"] == "text"
    assert listed[3]["detail"] == {"title": "hello", "text": "world"}


def test_query_params_json(fake_staking) -> None:
    chain = fake_staking()
    shown = queries.params(chain.state)
    assert set(shown) == set(Params.__dataclass_fields__)
    assert shown["verifier"] == to_checksum(b"\x00" * 20)
    assert shown["proposal_deposit"] == str(DEPOSIT)
    assert shown["min_staking_amount"] == str(1000 * CMT)
    assert shown["max_vals"] == 19
    assert shown["proposal_expire_period"] == PERIOD


def test_state_keys_do_not_touch_params(fake_staking) -> None:
    chain = fake_staking()
    before = read_params(chain.state)
    chain.propose_text()
    chain.call(C1, "vote", 1, YES)
    chain.run_to(3 + PERIOD)
    assert read_params(chain.state) == before
