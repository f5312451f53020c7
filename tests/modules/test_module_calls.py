"""The native modules called as an Ethereum client or a contract would, on a real ``Blockchain``.

Every ``IStaking``/``IGovernance`` function from signed EIP-1559 transactions (receipts, logs
decoded with the compiled interface ABIs, state read back through the modules' views with
``eth_call`` and through the RPC queries), the same from a Solidity contract (``StakingClient``),
reverts that leave no trace and name their reason, static calls, restarts and state roots.
Blocks are built with ``coinbase = 0x…1000`` as the node builds them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount

from cybermiles.chain.genesis import Genesis
from cybermiles.execution.call import revert_reason
from cybermiles.modules.addresses import COMMUNITY_POOL, GOVERNANCE, STAKING
from cybermiles.modules.framework.store import ReadOnlyBackend
from cybermiles.modules.governance.module import GovernanceModule as Gov
from cybermiles.modules.params import read_params
from cybermiles.modules.staking import queries
from cybermiles.modules.staking.module import StakingModule as Staking

from chain_harness import (  # isort: skip
    CMT,
    QUIET_PARAMS,
    CallReverted,
    Chain,
    EventDecoder,
    address_of,
    encode_call,
    hexaddr,
    key,
    make_genesis,
    validator,
)

V0, V1, ALICE, BOB, CAROL, VERIFIER, MALLORY = (key(i) for i in range(7))
V0_ADDR, V1_ADDR, ALICE_ADDR, BOB_ADDR, CAROL_ADDR, VERIFIER_ADDR, MALLORY_ADDR = (
    address_of(k) for k in (V0, V1, ALICE, BOB, CAROL, VERIFIER, MALLORY)
)
V0_HEX, V1_HEX, BOB_HEX = hexaddr(V0_ADDR), hexaddr(V1_ADDR), hexaddr(BOB_ADDR)
GENESIS_STAKE = 1_000 * CMT  # Alice's genesis delegation on V0
SELF_STAKE = 100_000 * CMT  # each genesis validator: 1,000,000 CMT max amount x 10%
DEPOSIT = 10 * CMT
WAIT = 3  # unstake_waiting_period
WAD = 10**18
DESCRIPTION = ("bob-node", "https://bob.example", "Earth", "bob@example.com", "runs a node")
EVENTS = EventDecoder("IStaking", "IGovernance", "StakingClient")
PARAMS = {
    "min_staking_amount": CMT,
    "proposal_deposit": DEPOSIT,
    "unstake_waiting_period": WAIT,
    "proposal_expire_period": 50,
    "verifier": int.from_bytes(VERIFIER_ADDR, "big"),
}
USERS = (V0, V1, ALICE, BOB, CAROL, VERIFIER, MALLORY)


def genesis(params: dict[str, int] | None = None) -> Genesis:
    return make_genesis(
        validators=[
            validator(V0, max_amount=1_000_000 * CMT, delegations=[(ALICE_ADDR, GENESIS_STAKE)]),
            validator(V1, max_amount=1_000_000 * CMT, comp_rate="0.1"),
        ],
        funded={address_of(k): 1_000_000 * CMT for k in USERS},
        params={**PARAMS, **(params or {})},
    )


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    c = Chain(tmp_path / "data", genesis())
    yield c
    c.close()


def ok(receipt: Any) -> list[tuple[bytes, str, dict[str, Any]]]:
    """The decoded logs of a successful receipt."""
    assert receipt.status == 1
    return EVENTS.decode_all(receipt.logs)


def delegation(chain: Chain, owner: bytes, delegator: bytes, **kw: Any) -> tuple[int, ...]:
    return chain.view(Staking, "delegation", hexaddr(owner), hexaddr(delegator), **kw)


def candidate(chain: Chain, owner: bytes, **kw: Any) -> tuple[Any, ...]:
    return chain.view(Staking, "candidate", hexaddr(owner), **kw)


def shares(record: tuple[int, ...]) -> int:
    delegate_amount, award, withdrawn, slashed = record[:4]
    return delegate_amount + award - withdrawn - slashed


def declare_bob(chain: Chain, max_amount: int = 1_000 * CMT) -> None:
    data = Staking.calldata(
        "declareCandidacy", b"\xb0" * 32, max_amount, 3 * WAD // 10, DESCRIPTION
    )
    assert chain.send(BOB, STAKING, data, value=max_amount // 10).status == 1


# ============================================================================ plain transactions


def test_genesis_validators_are_visible_through_the_views(chain: Chain) -> None:
    record = candidate(chain, V0_ADDR)
    assert record[0] == b"\x01" + V0_ADDR + bytes(11)
    assert record[1:3] == (1_000_000 * CMT, 2 * WAD // 10)
    assert record[3] == SELF_STAKE + GENESIS_STAKE
    assert record[4] > 0 and record[5:] == (True, False, 0)
    assert delegation(chain, V0_ADDR, ALICE_ADDR)[0] == GENESIS_STAKE
    assert delegation(chain, V0_ADDR, BOB_ADDR) == (0,) * 6  # no delegation: zeros
    assert {v.lower() for v in chain.view(Staking, "validators")} == {
        V0_HEX.lower(),
        V1_HEX.lower(),
    }
    assert chain.view(Staking, "backups") == ()
    assert chain.view(Staking, "totalStake") == 2 * SELF_STAKE + GENESIS_STAKE
    assert chain.balance(STAKING) == 2 * SELF_STAKE + GENESIS_STAKE
    assert chain.view(Gov, "param", "proposal_deposit") == DEPOSIT
    assert chain.view(Gov, "communityPool") == chain.balance(COMMUNITY_POOL) == 0


def test_views_also_answer_transactions(chain: Chain) -> None:
    views = [
        (STAKING, Staking.calldata("candidate", V0_HEX)),
        (STAKING, Staking.calldata("delegation", V0_HEX, hexaddr(ALICE_ADDR))),
        (STAKING, Staking.calldata("validators")),
        (STAKING, Staking.calldata("backups")),
        (STAKING, Staking.calldata("totalStake")),
        (GOVERNANCE, Gov.calldata("param", "max_vals")),
        (GOVERNANCE, Gov.calldata("communityPool")),
    ]
    nonce = chain.nonce(CAROL_ADDR)
    block = chain.block(
        [chain.tx(CAROL, to, data, nonce=nonce + i) for i, (to, data) in enumerate(views)]
    )
    assert [(r.status, r.logs) for r in block.receipts] == [(1, ())] * len(views)
    for i in range(len(views)):
        assert 21_000 < chain.gas_of(block, i) < 30_000  # intrinsic + the views' fixed gas


def test_every_staking_function_from_plain_transactions(chain: Chain) -> None:
    key1, key2 = b"\xb0" * 32, b"\xb1" * 32

    # declareCandidacy: msg.value is the self-stake, maxAmount x 10%
    bob_before = chain.balance(BOB_ADDR)
    data = Staking.calldata("declareCandidacy", key1, 1_000 * CMT, 3 * WAD // 10, DESCRIPTION)
    assert ok(chain.send(BOB, STAKING, data, value=100 * CMT)) == [
        (
            STAKING,
            "CandidacyDeclared",
            {
                "candidate": BOB_ADDR,
                "pubKey": key1,
                "maxAmount": 1_000 * CMT,
                "compRate": 3 * WAD // 10,
            },
        )
    ]
    assert chain.balance(BOB_ADDR) == bob_before - 100 * CMT - chain.last_fee()
    record = candidate(chain, BOB_ADDR)
    assert record[:3] == (key1, 1_000 * CMT, 3 * WAD // 10)
    assert record[3] >= 100 * CMT and record[5:] == (True, False, 0)
    assert delegation(chain, BOB_ADDR, BOB_ADDR)[0] == 100 * CMT

    # the RPC queries read the same state
    with chain.chain.state_at() as view:
        backend = ReadOnlyBackend(view)
        queried = queries.candidate(backend, read_params(backend), BOB_ADDR)
    assert queried is not None
    assert queried["owner_address"] == BOB_HEX and queried["pub_key"] == "0x" + key1.hex()
    assert queried["comp_rate"] == "0.3" and queried["description"]["name"] == "bob-node"

    # delegate
    receipt = chain.send(ALICE, STAKING, Staking.calldata("delegate", BOB_HEX), value=50 * CMT)
    assert ok(receipt) == [
        (STAKING, "Delegated", {"delegator": ALICE_ADDR, "candidate": BOB_ADDR, "amount": 50 * CMT})
    ]
    assert delegation(chain, BOB_ADDR, ALICE_ADDR)[0] == 50 * CMT
    assert delegation(chain, BOB_ADDR, ALICE_ADDR)[4] == 3 * WAD // 10  # the candidate's rate

    # setCompRate
    data = Staking.calldata("setCompRate", hexaddr(ALICE_ADDR), WAD // 10)
    assert ok(chain.send(BOB, STAKING, data)) == [
        (
            STAKING,
            "CompRateSet",
            {"candidate": BOB_ADDR, "delegator": ALICE_ADDR, "compRate": WAD // 10},
        )
    ]
    assert delegation(chain, BOB_ADDR, ALICE_ADDR)[4] == WAD // 10

    # verifyCandidacy, by the `verifier` parameter's account
    data = Staking.calldata("verifyCandidacy", BOB_HEX, True)
    assert ok(chain.send(VERIFIER, STAKING, data)) == [
        (STAKING, "CandidacyVerified", {"candidate": BOB_ADDR, "verified": True})
    ]
    assert candidate(chain, BOB_ADDR)[6] is True

    # updateCandidacy: raising maxAmount needs the extra self-stake; same description stays verified
    data = Staking.calldata("updateCandidacy", key2, 2_000 * CMT, 3 * WAD // 10, DESCRIPTION)
    assert ok(chain.send(BOB, STAKING, data, value=100 * CMT)) == [
        (
            STAKING,
            "CandidacyUpdated",
            {
                "candidate": BOB_ADDR,
                "pubKey": key2,
                "maxAmount": 2_000 * CMT,
                "compRate": 3 * WAD // 10,
            },
        )
    ]
    record = candidate(chain, BOB_ADDR)
    assert record[:3] == (key2, 2_000 * CMT, 3 * WAD // 10) and record[6] is True
    assert delegation(chain, BOB_ADDR, BOB_ADDR)[0] == 200 * CMT
    changed = (*DESCRIPTION[:4], "new profile")
    data = Staking.calldata("updateCandidacy", key2, 2_000 * CMT, 3 * WAD // 10, changed)
    assert chain.send(BOB, STAKING, data).status == 1
    assert candidate(chain, BOB_ADDR)[6] is False  # a changed description resets `verified`

    # deactivateCandidacy / activateCandidacy
    assert ok(chain.send(BOB, STAKING, Staking.calldata("deactivateCandidacy"))) == [
        (STAKING, "CandidacyActivated", {"candidate": BOB_ADDR, "active": False})
    ]
    assert candidate(chain, BOB_ADDR)[4:6] == (0, False)  # inactive: no power
    assert ok(chain.send(BOB, STAKING, Staking.calldata("activateCandidacy"))) == [
        (STAKING, "CandidacyActivated", {"candidate": BOB_ADDR, "active": True})
    ]
    assert candidate(chain, BOB_ADDR)[5] is True

    # withdraw: unbonding for WAIT blocks, then back in the delegator's balance
    alice_before = chain.balance(ALICE_ADDR)
    receipt = chain.send(ALICE, STAKING, Staking.calldata("withdraw", BOB_HEX, 20 * CMT))
    mature = chain.height + WAIT
    assert ok(receipt) == [
        (
            STAKING,
            "Withdrawn",
            {
                "delegator": ALICE_ADDR,
                "candidate": BOB_ADDR,
                "amount": 20 * CMT,
                "matureHeight": mature,
            },
        )
    ]
    fee = chain.last_fee()
    assert delegation(chain, BOB_ADDR, ALICE_ADDR)[2] == 20 * CMT
    while chain.height < mature - 1:
        chain.block()
    assert chain.balance(ALICE_ADDR) == alice_before - fee
    chain.block()
    assert chain.balance(ALICE_ADDR) == alice_before - fee + 20 * CMT

    # withdrawCandidacy: every delegation unbonds, then the candidate is gone
    alice_shares = shares(delegation(chain, BOB_ADDR, ALICE_ADDR))
    bob_shares = shares(delegation(chain, BOB_ADDR, BOB_ADDR))
    receipt = chain.send(BOB, STAKING, Staking.calldata("withdrawCandidacy"))
    mature = chain.height + WAIT
    logs = ok(receipt)
    assert logs[-1] == (STAKING, "CandidacyWithdrawn", {"candidate": BOB_ADDR})
    assert sorted(
        (v["delegator"], v["amount"], v["matureHeight"]) for _, n, v in logs[:-1]
    ) == sorted([(ALICE_ADDR, alice_shares, mature), (BOB_ADDR, bob_shares, mature)])
    assert all(name == "Withdrawn" for _, name, _ in logs[:-1])
    with pytest.raises(CallReverted) as excinfo:
        candidate(chain, BOB_ADDR)
    assert excinfo.value.reason == f"staking: {BOB_HEX} is not a candidate"
    assert chain.view(Staking, "totalStake") == sum(
        candidate(chain, owner)[3] for owner in (V0_ADDR, V1_ADDR)
    )


def test_every_governance_function_from_plain_transactions(chain: Chain) -> None:
    chain.block()  # the community pool fills from the block awards
    pool = chain.view(Gov, "communityPool")
    assert pool == chain.balance(COMMUNITY_POOL) > 0
    payee = b"\xbe" * 20
    height = chain.height + 1
    proposals = [
        ("proposeText", ("title", "some text"), 3),
        ("proposeChangeParam", ("max_vals", 21, height), 1),
        ("proposeTransferFund", (hexaddr(payee), pool // 2, "a grant"), 0),
        ("proposeUpgrade", ("v-next", "99.0.0", height + 1_000), 2),
    ]
    alice_before = chain.balance(ALICE_ADDR)
    nonce = chain.nonce(ALICE_ADDR)
    # eth_call tells the id a proposal will get
    first = chain.call(
        GOVERNANCE, Gov.calldata("proposeText", "t", "x"), sender=ALICE_ADDR, value=DEPOSIT
    )
    assert first.success and abi_decode(["uint256"], first.output) == (1,)
    txs = [
        chain.tx(ALICE, GOVERNANCE, Gov.calldata(name, *args), value=DEPOSIT, nonce=nonce + i)
        for i, (name, args, _) in enumerate(proposals)
    ]
    block = chain.block(txs)
    fees = sum(chain.last_fee(i) for i in range(len(txs)))
    expire = block.header.block_number + 50
    for i, ((_, _, kind), receipt) in enumerate(zip(proposals, block.receipts, strict=True)):
        assert ok(receipt) == [
            (
                GOVERNANCE,
                "Proposed",
                {"id": i + 1, "proposer": ALICE_ADDR, "kind": kind, "expireHeight": expire},
            )
        ]
    assert chain.balance(GOVERNANCE) == 4 * DEPOSIT
    start = block.header.block_number
    # eth-abi decodes addresses as lowercase text
    assert chain.view(Gov, "proposal", 2)[:5] == (1, "0x" + ALICE_ADDR.hex(), 0, start, expire)

    # both validators vote yes on 1-3 (their power covers Alice's delegation: she did not vote)
    votes = [
        chain.tx(
            voter,
            GOVERNANCE,
            Gov.calldata("vote", pid, 0),
            nonce=chain.nonce(address_of(voter)) + i,
        )
        for voter in (V0, V1)
        for i, pid in enumerate((1, 2, 3))
    ]
    block = chain.block(votes)
    for tx, receipt in zip(votes, block.receipts, strict=True):
        (_, name, values) = ok(receipt)[0]
        assert name == "Voted" and values["voter"] == tx.sender and values["answer"] == 0
    for pid in (1, 2, 3):
        status = chain.view(Gov, "proposal", pid)[2]
        assert status == 1, (pid, status)  # passed early: yes x 3 >= total x 2
    assert chain.view(Gov, "proposal", 4)[2] == 0  # nobody voted on the upgrade
    assert chain.view(Gov, "param", "max_vals") == 21
    assert chain.balance(payee) == pool // 2
    # deposits of decided proposals return; the upgrade's stays
    assert chain.balance(ALICE_ADDR) == alice_before - fees - DEPOSIT
    assert chain.balance(GOVERNANCE) == DEPOSIT

    # a vote from a delegator overrides its candidate's vote for its own power
    receipt = chain.send(ALICE, GOVERNANCE, Gov.calldata("vote", 4, 1))
    assert ok(receipt)[0][1:] == ("Voted", {"id": 4, "voter": ALICE_ADDR, "answer": 1})
    _, _, status, _, _, yes, no, abstain = chain.view(Gov, "proposal", 4)
    assert (status, yes, abstain) == (0, 0, 0) and no == delegation(chain, V0_ADDR, ALICE_ADDR)[
        5
    ] > 0


# ============================================================================ from a contract


def client_call(signature: str, *args: Any) -> bytes:
    return encode_call(signature, *args)


def test_module_calls_from_a_contract(chain: Chain) -> None:
    client = chain.deploy(CAROL, "StakingClient", value=100 * CMT)

    # delegate its own balance: the module's event and the contract's, one receipt
    receipt = chain.send(CAROL, client, client_call("delegate(address,uint256)", V0_ADDR, 30 * CMT))
    assert ok(receipt) == [
        (STAKING, "Delegated", {"delegator": client, "candidate": V0_ADDR, "amount": 30 * CMT}),
        (
            client,
            "ClientDelegated",
            {"candidate": V0_ADDR, "amount": 30 * CMT, "shares": 30 * CMT},
        ),
    ]
    assert chain.balance(client) == 70 * CMT
    assert delegation(chain, V0_ADDR, client)[0] == 30 * CMT
    assert chain.contract_view(client, "delegated()", ["uint256"]) == 30 * CMT

    # the contract reads the module from its own view functions (STATICCALL)
    mine = chain.contract_view(client, "myDelegation(address)", ["uint256"] * 6, V0_ADDR)
    assert mine == delegation(chain, V0_ADDR, client)
    assert chain.contract_view(client, "sharesOn(address)", ["uint256"], V0_ADDR) == shares(mine)
    total, n_validators, n_backups = chain.contract_view(client, "overview()", ["uint256"] * 3)
    assert (total, n_validators, n_backups) == (chain.view(Staking, "totalStake"), 2, 0)
    assert chain.contract_view(client, "param(string)", ["uint256"], "max_vals") == 19

    # withdraw
    receipt = chain.send(CAROL, client, client_call("withdraw(address,uint256)", V0_ADDR, 5 * CMT))
    assert ok(receipt) == [
        (
            STAKING,
            "Withdrawn",
            {
                "delegator": client,
                "candidate": V0_ADDR,
                "amount": 5 * CMT,
                "matureHeight": chain.height + WAIT,
            },
        )
    ]
    for _ in range(WAIT):
        chain.block()
    assert chain.balance(client) == 75 * CMT  # the unbonded stake came back to the contract

    # propose and vote through IGovernance, with the contract's own stake and balance
    data = client_call("proposeText(string,string,uint256)", "from a contract", "hi", DEPOSIT)
    logs = ok(chain.send(CAROL, client, data))
    assert logs[0][:2] == (GOVERNANCE, "Proposed") and logs[0][2]["proposer"] == client
    pid = logs[0][2]["id"]
    assert chain.contract_view(client, "lastProposal()", ["uint256"]) == pid
    assert chain.balance(client) == 65 * CMT
    logs = ok(chain.send(CAROL, client, client_call("vote(uint256,uint8)", pid, 2)))
    assert logs == [(GOVERNANCE, "Voted", {"id": pid, "voter": client, "answer": 2})]
    assert chain.contract_view(client, "proposalStatus(uint256)", ["uint8"], pid) == 0
    assert chain.view(Gov, "proposal", pid)[7] == delegation(chain, V0_ADDR, client)[5] > 0

    # a module refusal caught by try/catch: the reason reaches the contract
    data = client_call("tryDelegate(address,uint256)", BOB_ADDR, CMT)
    result = chain.call(client, data, sender=CAROL_ADDR)
    assert abi_decode(["bool", "string"], result.output) == (
        False,
        f"staking: {BOB_HEX} is not a candidate",
    )
    logs = ok(chain.send(CAROL, client, data))
    assert logs == [(client, "ModuleRefused", {"reason": f"staking: {BOB_HEX} is not a candidate"})]
    assert chain.balance(client) == 65 * CMT

    # call the module, then revert: nothing remains
    before = delegation(chain, V0_ADDR, client)
    client_state = (chain.balance(client), chain.contract_view(client, "delegated()", ["uint256"]))
    data = client_call("delegateThenRevert(address,uint256)", V0_ADDR, 10 * CMT)
    result = chain.call(client, data, sender=CAROL_ADDR)
    assert not result.success and revert_reason(result.output) == "StakingClient: rolled back"
    receipt = chain.send(CAROL, client, data)
    assert receipt.status == 0 and receipt.logs == ()
    assert (chain.balance(client), chain.contract_view(client, "delegated()", ["uint256"])) == (
        client_state
    )
    after = delegation(chain, V0_ADDR, client)
    assert after[0] == before[0] and after[2:5] == before[2:5]  # only awards grow per block


def test_a_write_under_staticcall_reverts_with_a_reason(chain: Chain) -> None:
    client = chain.deploy(CAROL, "StakingClient", value=10 * CMT)
    assert chain.send(CAROL, client, client_call("delegate(address,uint256)", V0_ADDR, CMT)).status
    ok_flag, data = chain.contract_view(
        client, "writeFromView(address)", ["bool", "bytes"], V0_ADDR
    )
    assert ok_flag is False
    assert revert_reason(data) == "staking.withdraw: state change in a static call"
    # from a transaction too (a view called in a transaction still uses STATICCALL)
    receipt = chain.send(CAROL, client, client_call("writeFromView(address)", V0_ADDR))
    assert receipt.status == 1 and receipt.logs == ()
    assert delegation(chain, V0_ADDR, client)[2] == 0  # nothing withdrawn


# ============================================================================ bad calls


def bad_calls() -> list[tuple[str, LocalAccount, bytes, bytes, int, str]]:
    """(id, sender, to, data, value, reason) of calls that must revert."""
    desc = DESCRIPTION
    return [
        (
            "verify by a non-verifier",
            MALLORY,
            STAKING,
            Staking.calldata("verifyCandidacy", V0_HEX, True),
            0,
            "staking: only the verifier may verify candidates",
        ),
        (
            "setCompRate by a non-candidate",
            MALLORY,
            STAKING,
            Staking.calldata("setCompRate", hexaddr(ALICE_ADDR), 0),
            0,
            f"staking: {hexaddr(MALLORY_ADDR)} is not a candidate",
        ),
        (
            "withdraw another's self-stake floor",
            V0,
            STAKING,
            Staking.calldata("withdraw", V0_HEX, CMT),
            0,
            f"staking: the owner can't go below its self-stake {SELF_STAKE}",
        ),
        (
            "delegate nothing",
            MALLORY,
            STAKING,
            Staking.calldata("delegate", V0_HEX),
            0,
            "staking: delegate needs a positive msg.value",
        ),
        (
            "delegate over maxAmount",
            MALLORY,
            STAKING,
            Staking.calldata("delegate", V0_HEX),
            900_000 * CMT,
            "staking: delegation would raise the candidate's shares above maxAmount "
            f"{1_000_000 * CMT}",
        ),
        (
            "declare with a wrong self-stake",
            MALLORY,
            STAKING,
            Staking.calldata("declareCandidacy", b"\x33" * 32, 1_000 * CMT, 0, desc),
            99 * CMT,
            f"staking: msg.value must be the self-stake {100 * CMT} wei, got {99 * CMT}",
        ),
        (
            "declare with compRate above 100%",
            MALLORY,
            STAKING,
            Staking.calldata("declareCandidacy", b"\x33" * 32, 1_000 * CMT, WAD + 1, desc),
            100 * CMT,
            f"staking: compRate {WAD + 1} above 1e18 (100%)",
        ),
        (
            "withdraw more than the shares",
            ALICE,
            STAKING,
            Staking.calldata("withdraw", V0_HEX, 2_000 * CMT),
            0,
            f"staking: amount {2_000 * CMT} above the delegation's shares",
        ),
        (
            "value to a non-payable staking function",
            ALICE,
            STAKING,
            Staking.calldata("withdraw", V0_HEX, CMT),
            1,
            "staking.withdraw: not payable",
        ),
        (
            "value to a staking view",
            ALICE,
            STAKING,
            Staking.calldata("totalStake"),
            1,
            "staking.totalStake: not payable",
        ),
        (
            "unknown staking selector",
            ALICE,
            STAKING,
            bytes.fromhex("deadbeef"),
            0,
            "staking: unknown function selector 0xdeadbeef",
        ),
        (
            "plain transfer to a module",
            ALICE,
            STAKING,
            b"",
            CMT,
            "staking: call data has no function selector",
        ),
        (
            "no selector",
            ALICE,
            STAKING,
            b"\x01\x02",
            0,
            "staking: call data has no function selector",
        ),
        (
            "truncated arguments",
            ALICE,
            STAKING,
            Staking.calldata("withdraw", V0_HEX, CMT)[:40],
            0,
            "staking: invalid arguments for withdraw(address,uint256)",
        ),
        (
            "deposit below proposal_deposit",
            ALICE,
            GOVERNANCE,
            Gov.calldata("proposeText", "t", "x"),
            DEPOSIT - 1,
            f"governance: deposit {DEPOSIT - 1} is below proposal_deposit {DEPOSIT}",
        ),
        (
            "propose without stake",
            MALLORY,
            GOVERNANCE,
            Gov.calldata("proposeText", "t", "x"),
            DEPOSIT,
            "governance: the proposer has no stake (only candidates and delegators propose)",
        ),
        (
            "unknown parameter",
            ALICE,
            GOVERNANCE,
            Gov.calldata("proposeChangeParam", "no_such_param", 1, 10),
            DEPOSIT,
            "governance.proposeChangeParam: unknown parameter 'no_such_param'",
        ),
        (
            "vote on an unknown proposal",
            ALICE,
            GOVERNANCE,
            Gov.calldata("vote", 99, 0),
            0,
            "governance.vote: unknown proposal 99",
        ),
        (
            "value to vote",
            ALICE,
            GOVERNANCE,
            Gov.calldata("vote", 99, 0),
            1,
            "governance.vote: not payable",
        ),
        (
            "unknown governance selector",
            ALICE,
            GOVERNANCE,
            bytes.fromhex("12345678") + bytes(32),
            0,
            "governance: unknown function selector 0x12345678",
        ),
    ]


BAD_CALLS = bad_calls()


def test_bad_calls_revert_with_a_decodable_reason(chain: Chain) -> None:
    # as eth_call: the reason is in the output
    for name, sender, to, data, value, reason in BAD_CALLS:
        result = chain.call(to, data, sender=address_of(sender), value=value)
        assert not result.success and result.reverted, name
        assert result.error == "execution reverted", name
        got = revert_reason(result.output)
        assert got is not None and got.startswith(reason), (name, got)

    # as transactions, all in one block: status 0, no logs, only gas and nonce spent
    parent = chain.height
    before = {address_of(k): chain.balance(address_of(k)) for k in USERS}
    nonces = {address_of(k): chain.nonce(address_of(k)) for k in USERS}
    txs = []
    for _, sender, to, data, value, _ in BAD_CALLS:
        who = address_of(sender)
        txs.append(chain.tx(sender, to, data, value=value, nonce=nonces[who], gas=3_000_000))
        nonces[who] += 1
    block = chain.block(txs)
    spent: dict[bytes, int] = {}
    for i, (tx, receipt) in enumerate(zip(txs, block.receipts, strict=True)):
        assert receipt.status == 0 and receipt.logs == (), BAD_CALLS[i][0]
        assert chain.gas_of(block, i) < 3_000_000, BAD_CALLS[i][0]  # a revert: gas left
        spent[tx.sender] = spent.get(tx.sender, 0) + chain.last_fee(i)
    for who, balance in before.items():
        assert chain.balance(who) == balance - spent.get(who, 0)
        assert chain.nonce(who) == nonces[who]
    # replaying a mined transaction on its parent state gives its reason
    for (name, _, to, _, _, reason), tx in zip(BAD_CALLS, txs, strict=True):
        result = chain.call(to, tx.data, sender=tx.sender, value=tx.value, height=parent)
        assert (revert_reason(result.output) or "").startswith(reason), name


def test_reverts_leave_no_trace_in_the_state_root(tmp_path: Path) -> None:
    """With no minting and free gas, a block of reverting calls has the same state root as a
    block of no-op transfers from the same senders: only the nonces moved."""
    quiet = genesis(QUIET_PARAMS)
    roots = []
    for name in ("reverts", "no-ops"):
        chain = Chain(tmp_path / name, quiet, gas_price=0)
        try:
            client = chain.deploy(CAROL, "StakingClient", value=100 * CMT)
            assert chain.send(
                CAROL, client, client_call("delegate(address,uint256)", V0_ADDR, 10 * CMT)
            ).status
            calls = [(s, t, d, v) for _, s, t, d, v, _ in BAD_CALLS] + [
                (
                    CAROL,
                    client,
                    client_call("delegateThenRevert(address,uint256)", V0_ADDR, CMT),
                    0,
                ),
                (CAROL, client, client_call("delegate(address,uint256)", BOB_ADDR, CMT), 0),
            ]
            nonces = {address_of(k): chain.nonce(address_of(k)) for k in USERS}
            txs = []
            for sender, to, data, value in calls:
                who = address_of(sender)
                if name == "reverts":
                    tx = chain.tx(sender, to, data, value=value, nonce=nonces[who])
                else:
                    tx = chain.tx(sender, who, b"", nonce=nonces[who])  # 0 wei to itself
                txs.append(tx)
                nonces[who] += 1
            block = chain.block(txs)
            expected = 0 if name == "reverts" else 1
            assert [r.status for r in block.receipts] == [expected] * len(txs)
            assert chain.view(Gov, "communityPool") == 0  # nothing minted, no fees
            roots.append(block.header.state_root)
        finally:
            chain.close()
    assert roots[0] == roots[1]


# ============================================================================ roots and restarts


def staking_script(chain: Chain, alice_amount: int) -> None:
    """A few blocks touching every kind of module state."""
    declare_bob(chain)
    chain.send(ALICE, STAKING, Staking.calldata("delegate", BOB_HEX), value=alice_amount)
    chain.send(ALICE, STAKING, Staking.calldata("withdraw", V0_HEX, 100 * CMT))
    chain.send(ALICE, GOVERNANCE, Gov.calldata("proposeText", "t", "x"), value=DEPOSIT)
    chain.send(V0, GOVERNANCE, Gov.calldata("vote", 1, 1))


def snapshot(chain: Chain) -> tuple[Any, ...]:
    return (
        candidate(chain, BOB_ADDR),
        candidate(chain, V0_ADDR),
        delegation(chain, BOB_ADDR, ALICE_ADDR),
        delegation(chain, V0_ADDR, ALICE_ADDR),
        chain.view(Staking, "totalStake"),
        chain.view(Staking, "validators"),
        chain.view(Gov, "proposal", 1),
        chain.view(Gov, "communityPool"),
        chain.balance(STAKING),
        chain.balance(GOVERNANCE),
    )


def test_module_state_is_in_the_state_root_and_survives_a_restart(tmp_path: Path) -> None:
    g = genesis()
    a = Chain(tmp_path / "a", g)
    b = Chain(tmp_path / "b", g)
    c = Chain(tmp_path / "c", g)
    try:
        assert a.state_root == b.state_root == c.state_root
        staking_script(a, 50 * CMT)
        staking_script(b, 50 * CMT)
        staking_script(c, 50 * CMT + 1)  # one wei more on one delegation
        assert a.height == b.height == c.height
        for height in range(a.height + 1):
            header_a = a.chain.blocks.header(height)
            header_b = b.chain.blocks.header(height)
            assert header_a is not None and header_b is not None
            assert header_a.state_root == header_b.state_root, height
        assert a.state_root != c.state_root

        before, root, height = snapshot(a), a.state_root, a.height
        history = delegation(a, BOB_ADDR, ALICE_ADDR, height=height - 3)
        a.reopen()
        assert (snapshot(a), a.state_root, a.height) == (before, root, height)
        assert delegation(a, BOB_ADDR, ALICE_ADDR, height=height - 3) == history
        # the reopened chain keeps building the same blocks as one never closed
        a.send(ALICE, STAKING, Staking.calldata("delegate", V1_HEX), value=7 * CMT)
        b.send(ALICE, STAKING, Staking.calldata("delegate", V1_HEX), value=7 * CMT)
        assert a.state_root == b.state_root
        assert delegation(a, V1_ADDR, ALICE_ADDR)[0] == 7 * CMT
    finally:
        for chain in (a, b, c):
            chain.close()


# ======================================================================= DELEGATECALL, CALLCODE

# Runtime code forwarding the call data to 0x…1000 with DELEGATECALL (or CALLCODE, passing
# msg.value) and returning or reverting with what it answered.
DELEGATECALL_PROXY = bytes.fromhex("365f5f375f5f365f6110005af43d5f5f3e6017573d5ffd5b3d5ff3")
CALLCODE_PROXY = bytes.fromhex("365f5f375f5f365f346110005af23d5f5f3e6018573d5ffd5b3d5ff3")
PROXY = b"\xdc" * 20


@pytest.mark.parametrize(
    "proxy_code", [DELEGATECALL_PROXY, CALLCODE_PROXY], ids=["delegatecall", "callcode"]
)
def test_delegatecall_and_callcode_to_a_module_are_refused(
    tmp_path: Path, proxy_code: bytes
) -> None:
    g = make_genesis(
        validators=[validator(V0, max_amount=1_000_000 * CMT)],
        funded={ALICE_ADDR: 1_000 * CMT},
        params={**PARAMS, **QUIET_PARAMS},
        code={PROXY: proxy_code},
    )
    chain = Chain(tmp_path / "data", g, gas_price=0)
    try:
        receipt = chain.send(ALICE, PROXY, Staking.calldata("delegate", V0_HEX), value=5 * CMT)
        # the CMT stays with the proxy: the module must not count it as stake
        assert chain.view(Staking, "totalStake") == chain.balance(STAKING)
        assert delegation(chain, V0_ADDR, ALICE_ADDR) == (0,) * 6
        assert delegation(chain, V0_ADDR, PROXY) == (0,) * 6
        assert receipt.status == 0
    finally:
        chain.close()
