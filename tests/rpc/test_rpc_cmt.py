"""The ``cmt_*`` methods against an automining dev node with one genesis validator.

The node: chain id 1234, ``rpc_harness.KEYS`` funded and all held by the node, the validator
operated by ``KEYS[0]`` (as on `cmt devnet`), the devnet's short parameters, and ``KEYS[0]``
as the ``verifier``. Each test uses its own accounts, so the tests may run in any order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rpc_harness import CHAIN_ID, FUNDS, KEYS, HttpReply

from cybermiles.chain.genesis import parse_genesis
from cybermiles.cli.devnet import DEV_PARAMS, dev_validator
from cybermiles.node.config import NodeConfig, RpcConfig
from cybermiles.node.node import Node

CMT = 10**18
OPERATOR = KEYS[0]  # operates the genesis validator; also the verifier
STAKING = "0x0000000000000000000000000000000000001000"
NOBODY = "0x" + "5a" * 20


def addr(key: Any) -> bytes:
    return bytes.fromhex(key.address[2:])


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    genesis = parse_genesis(
        {
            "chain_id": CHAIN_ID,
            "timestamp": 1_700_000_000,
            "alloc": {key.address: {"balance": str(FUNDS)} for key in KEYS},
            "validators": [dev_validator(addr(OPERATOR))],
            "params": {**DEV_PARAMS, "verifier": OPERATOR.address},
        }
    )
    config = NodeConfig()
    config.mining.block_time = 0
    config.archive = True
    config.rpc = RpcConfig(port=0)
    keys = {addr(key): bytes(key.key) for key in KEYS}
    node = Node(tmp_path_factory.mktemp("cmt-node"), config, genesis, dev=True, dev_keys=keys)
    node.start()
    yield node
    node.stop()


Call = Callable[..., Any]


@pytest.fixture(scope="module")
def request_(post: Callable[..., HttpReply]) -> Call:
    """``request_(method, *params)`` -> the whole JSON-RPC answer (result or error)."""

    def send(method: str, *params: Any) -> dict[str, Any]:
        reply = post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        assert reply.status == 200, reply.body
        return dict(reply.json())

    return send


@pytest.fixture(scope="module")
def tx(call: Call) -> Call:
    """``tx(method, args)``: send a cmt_* transaction, wait for it, assert it succeeded."""

    def send(method: str, args: dict[str, Any]) -> dict[str, Any]:
        tx_hash = call(method, args)
        assert isinstance(tx_hash, str) and len(tx_hash) == 66
        deadline = time.monotonic() + 30
        while (receipt := call("eth_getTransactionReceipt", tx_hash)) is None:
            assert time.monotonic() < deadline, f"{method}: {tx_hash} not mined"
            time.sleep(0.02)
        assert receipt["status"] == "0x1", (method, receipt)
        assert receipt["to"] == STAKING or receipt["to"].endswith("1001"), receipt
        return dict(receipt)

    return send


def head(call: Call) -> int:
    return int(call("eth_blockNumber"), 16)


def validator(call: Call, key: Any, *height: Any) -> dict[str, Any] | None:
    answer = call("cmt_queryValidator", key.address, *height)
    return answer["data"]


def delegations(call: Call, key: Any, *height: Any) -> dict[str, dict[str, Any]]:
    answer = call("cmt_queryDelegator", key.address, *height)
    return {d["validator_address"]: d for d in answer["data"]}


# --- staking ----------------------------------------------------------------------------------


def test_candidacy_lifecycle(call: Call, tx: Call) -> None:
    cand, deleg = KEYS[1], KEYS[2]
    before = head(call)
    balance = int(call("eth_getBalance", cand.address), 16)
    tx(
        "cmt_declareCandidacy",
        {
            "from": cand.address,
            "pubKey": "0x" + "a1" * 32,
            "maxAmount": str(20_000 * CMT),
            "compRate": "0.25",
            "description": {"name": "alice", "website": "https://alice.example"},
        },
    )
    listed = {v["owner_address"]: v for v in call("cmt_queryValidators")["data"]}
    assert cand.address in listed and OPERATOR.address in listed
    mine = listed[cand.address]
    assert mine["self_stake"] == str(2_000 * CMT)  # 10% of maxAmount, sent as value
    assert mine["shares"] == str(2_000 * CMT)
    assert mine["comp_rate"] == "0.25"
    assert mine["description"]["name"] == "alice"
    assert mine["active"] == "Y" and mine["verified"] == "N"
    assert int(call("eth_getBalance", cand.address), 16) <= balance - 2_000 * CMT
    # not there before the declaration
    assert validator(call, cand, before) is None

    # update: only the given fields change; raising maxAmount sends the extra self-stake
    tx(
        "cmt_updateCandidacy",
        {
            "from": cand.address,
            "maxAmount": hex(30_000 * CMT),
            "compRate": str(3 * 10**17),  # 18-decimal fixed point
            "description": {"email": "alice@example.com"},
        },
    )
    mine = validator(call, cand)
    assert mine is not None
    assert mine["max_shares"] == str(30_000 * CMT)
    assert mine["self_stake"] == str(3_000 * CMT)
    assert mine["comp_rate"] == "0.3"
    assert mine["pub_key"] == "0x" + "a1" * 32
    assert mine["description"]["name"] == "alice"
    assert mine["description"]["website"] == "https://alice.example"
    assert mine["description"]["email"] == "alice@example.com"

    tx(
        "cmt_verifyCandidacy",
        {"from": OPERATOR.address, "candidateAddress": cand.address, "verified": True},
    )
    assert validator(call, cand)["verified"] == "Y"  # type: ignore[index]

    tx("cmt_deactivateCandidacy", {"from": cand.address})
    assert validator(call, cand)["active"] == "N"  # type: ignore[index]
    tx("cmt_activateCandidacy", {"from": cand.address})
    assert validator(call, cand)["active"] == "Y"  # type: ignore[index]

    # a delegator, its comp rate set by the candidate, and a withdrawal
    tx(
        "cmt_delegate",
        {"from": deleg.address, "validatorAddress": cand.address, "amount": str(1_500 * CMT)},
    )
    assert delegations(call, deleg)[cand.address]["delegate_amount"] == str(1_500 * CMT)
    assert validator(call, cand)["num_of_delegators"] == 2  # type: ignore[index]
    tx(
        "cmt_setCompRate",
        {"from": cand.address, "delegatorAddress": deleg.address, "compRate": "0.1"},
    )
    assert delegations(call, deleg)[cand.address]["comp_rate"] == "0.1"
    tx(
        "cmt_withdraw",
        {"from": deleg.address, "validatorAddress": cand.address, "amount": str(500 * CMT)},
    )
    entry = delegations(call, deleg)[cand.address]
    assert entry["withdraw_amount"] == str(500 * CMT)
    assert entry["pending_withdraw_amount"] == str(500 * CMT)

    declared_at = head(call)
    tx("cmt_withdrawCandidacy", {"from": cand.address})
    assert validator(call, cand) is None
    assert cand.address not in {v["owner_address"] for v in call("cmt_queryValidators")["data"]}
    assert delegations(call, deleg) == {}
    # the older state still has it
    assert validator(call, cand, declared_at)["active"] == "Y"  # type: ignore[index]
    assert validator(call, cand, hex(declared_at)) is not None


def test_delegate_awards_grow_block_by_block(call: Call, tx: Call) -> None:
    deleg = KEYS[3]
    assert delegations(call, deleg) == {}
    receipt = tx(
        "cmt_delegate",
        {"from": deleg.address, "validatorAddress": OPERATOR.address, "amount": str(5_000 * CMT)},
    )
    delegated_at = int(receipt["blockNumber"], 16)
    entry = delegations(call, deleg)[OPERATOR.address]
    assert entry["delegate_amount"] == str(5_000 * CMT)
    assert int(entry["voting_power"]) > 0

    awards = []
    for _ in range(3):
        call("evm_mine")
        entry = delegations(call, deleg)[OPERATOR.address]
        awards.append(int(entry["award_amount"]))
    assert 0 < awards[0] < awards[1] < awards[2], awards

    infos = call("cmt_queryAwardInfos")
    assert infos["height"] == head(call)
    paid = {a["address"]: a for a in infos["data"]}
    assert paid[OPERATOR.address]["state"] == "Validator"
    assert int(paid[OPERATOR.address]["amount"]) > 0

    # history: before the delegation there was none; at each height its own award
    assert delegations(call, deleg, delegated_at - 1) == {}
    older = delegations(call, deleg, head(call) - 1)[OPERATOR.address]
    assert int(older["award_amount"]) == awards[1]
    assert call("cmt_queryDelegator", deleg.address, "earliest") == {"height": 0, "data": []}


def test_queries_answer_height_and_data(call: Call) -> None:
    number = head(call)
    for method in (
        "cmt_queryValidators",
        "cmt_queryAwardInfos",
        "cmt_queryProposals",
        "cmt_queryParams",
    ):
        latest = call(method)
        assert set(latest) == {"height", "data"}
        assert latest["height"] >= number
        assert call(method, 0)["height"] == 0
        assert call(method, "0x0")["height"] == 0
        assert call(method, "latest")["height"] >= number
    genesis = call("cmt_queryValidators", 0)["data"]
    assert [v["owner_address"] for v in genesis] == [OPERATOR.address]
    assert genesis[0]["state"] == "Validator"
    assert call("cmt_queryValidator", NOBODY)["data"] is None
    assert call("cmt_queryParams")["data"]["epoch_blocks"] == 1


# --- governance -------------------------------------------------------------------------------


def proposal(call: Call, proposal_id: int, *height: Any) -> dict[str, Any]:
    found = {p["id"]: p for p in call("cmt_queryProposals", *height)["data"]}
    return found[proposal_id]


def proposed_id(receipt: dict[str, Any]) -> int:
    (log,) = [entry for entry in receipt["logs"] if entry["address"].endswith("1001")]
    return int(log["topics"][1], 16)


def test_param_change_passes_with_the_validator_vote(call: Call, tx: Call) -> None:
    old = call("cmt_queryParams")["data"]["max_vals"]
    new = old + 2
    receipt = tx(
        "cmt_proposeChangeParam",
        {"from": OPERATOR.address, "name": "max_vals", "value": str(new)},
    )
    proposed_at = int(receipt["blockNumber"], 16)
    pid = proposed_id(receipt)
    item = proposal(call, pid)
    assert item["type"] == "change_param"
    assert item["result"] == "Voting"
    assert item["detail"] == {"name": "max_vals", "value": new, "height": 0}
    assert item["deposit"] == DEV_PARAMS["proposal_deposit"]  # the default deposit

    receipt = tx("cmt_vote", {"from": OPERATOR.address, "proposalId": pid, "answer": "Y"})
    voted_at = int(receipt["blockNumber"], 16)
    assert proposal(call, pid)["result"] == "Approved"
    assert call("cmt_queryParams")["data"]["max_vals"] == new
    # the state before the vote still has the old value and the proposal voting
    assert call("cmt_queryParams", voted_at - 1)["data"]["max_vals"] == old
    assert proposal(call, pid, proposed_at)["result"] == "Voting"


def test_other_proposals(call: Call, tx: Call) -> None:
    proposer = KEYS[4]
    # proposing needs stake: delegate first
    tx(
        "cmt_delegate",
        {"from": proposer.address, "validatorAddress": OPERATOR.address, "amount": str(10 * CMT)},
    )
    transfer = proposed_id(
        tx(
            "cmt_proposeTransferFund",
            {
                "from": proposer.address,
                "transferTo": NOBODY,
                "amount": "1000",
                "reason": "tests",
                "deposit": str(2 * CMT),
            },
        )
    )
    item = proposal(call, transfer)
    assert item["type"] == "transfer_fund"
    assert item["deposit"] == str(2 * CMT)
    assert item["detail"]["amount"] == "1000" and item["detail"]["reason"] == "tests"
    tx("cmt_vote", {"from": proposer.address, "proposalId": hex(transfer), "answer": "no"})

    upgrade = proposed_id(
        tx(
            "cmt_proposeUpgrade",
            {
                "from": proposer.address,
                "name": "v2",
                "version": "9.9.9",
                "height": head(call) + 1000,
            },
        )
    )
    assert proposal(call, upgrade)["detail"]["version"] == "9.9.9"
    tx("cmt_vote", {"from": proposer.address, "proposalId": str(upgrade), "answer": "abstain"})

    text = proposed_id(
        tx("cmt_proposeText", {"from": proposer.address, "title": "hello", "text": "world"})
    )
    assert proposal(call, text)["detail"] == {"title": "hello", "text": "world"}


# --- errors -----------------------------------------------------------------------------------

A = KEYS[5].address
DECLARE = {"from": A, "pubKey": "0x" + "b2" * 32, "maxAmount": "1000", "compRate": "0.2"}


@pytest.mark.parametrize(
    ("method", "params", "needle"),
    [
        ("cmt_declareCandidacy", ["not an object"], "expected an object"),
        ("cmt_declareCandidacy", [{**DECLARE, "from": None}], "args.from"),
        ("cmt_declareCandidacy", [{**DECLARE, "maxAmount": "ten"}], "args.maxAmount"),
        ("cmt_declareCandidacy", [{**DECLARE, "maxAmount": -1}], "args.maxAmount"),
        ("cmt_declareCandidacy", [{**DECLARE, "compRate": "1.5"}], "args.compRate"),
        ("cmt_declareCandidacy", [{**DECLARE, "pubKey": "0x1234"}], "args.pubKey"),
        ("cmt_declareCandidacy", [{**DECLARE, "description": {"nick": "x"}}], "nick"),
        ("cmt_declareCandidacy", [{**DECLARE, "maxAmont": "1"}], "args.maxAmont"),
        ("cmt_declareCandidacy", [{**DECLARE, "gas": "0x01"}], "args.gas"),
        ("cmt_delegate", [{"from": A, "validatorAddress": "0x12", "amount": "1"}], "validator"),
        ("cmt_delegate", [{"from": A, "validatorAddress": NOBODY}], "args.amount"),
        (
            "cmt_verifyCandidacy",
            [{"from": A, "candidateAddress": NOBODY, "verified": "yes"}],
            "args.verified",
        ),
        ("cmt_vote", [{"from": A, "proposalId": 1, "answer": "maybe"}], "args.answer"),
        ("cmt_proposeChangeParam", [{"from": A, "name": "max_vals"}], "args.value"),
        ("cmt_withdrawCandidacy", [{"from": "0xabc"}], "args.from"),
        ("cmt_queryValidators", ["yesterday"], "height"),
        ("cmt_queryDelegator", ["0x1234"], "address"),
        ("cmt_queryValidator", [NOBODY, -1], "height"),
    ],
)
def test_bad_params_are_invalid_params(
    request_: Call, method: str, params: list[Any], needle: str
) -> None:
    doc = request_(method, *params)
    assert doc["error"]["code"] == -32602, doc
    assert needle in doc["error"]["message"], doc


@pytest.mark.parametrize(
    ("method", "args", "reason"),
    [
        ("cmt_delegate", {"validatorAddress": NOBODY, "amount": "1"}, "is not a candidate"),
        ("cmt_withdraw", {"validatorAddress": NOBODY, "amount": "1"}, "is not a candidate"),
        ("cmt_withdrawCandidacy", {}, "is not a candidate"),
        ("cmt_updateCandidacy", {"compRate": "0.1"}, "is not a candidate"),
        ("cmt_verifyCandidacy", {"candidateAddress": NOBODY, "verified": True}, "verifier"),
        ("cmt_vote", {"proposalId": "999", "answer": "Y"}, "unknown proposal 999"),
        ("cmt_proposeText", {"title": "no stake"}, "no stake"),
        ("cmt_proposeChangeParam", {"name": "free_tx_window", "value": "5"}, "not governable"),
    ],
)
def test_reverting_calls_answer_the_revert_reason(
    request_: Call, method: str, args: dict[str, Any], reason: str
) -> None:
    doc = request_(method, {"from": KEYS[6].address, **args})
    error = doc["error"]
    assert error["code"] == 3, doc
    assert error["message"].startswith("execution reverted: "), doc
    assert reason in error["message"], doc
    assert error["data"].startswith("0x08c379a0")  # Error(string)


def test_unknown_account_and_missing_block(request_: Call) -> None:
    doc = request_("cmt_activateCandidacy", {"from": NOBODY})
    assert doc["error"] == {"code": -32000, "message": "unknown account"}
    doc = request_("cmt_queryParams", "0xffffff")
    assert doc["error"] == {"code": -32000, "message": "header not found"}


def test_explicit_gas_nonce_and_fees_are_used(call: Call, tx: Call) -> None:
    sender = KEYS[7]
    nonce = int(call("eth_getTransactionCount", sender.address, "pending"), 16)
    receipt = tx(
        "cmt_delegate",
        {
            "from": sender.address,
            "validatorAddress": OPERATOR.address,
            "amount": "0x" + format(CMT, "x"),
            "nonce": hex(nonce),
            "gas": hex(200_000),
            "gasPrice": hex(2 * 10**9),
        },
    )
    sent = call("eth_getTransactionByHash", receipt["transactionHash"])
    assert sent["nonce"] == hex(nonce)
    assert sent["gas"] == hex(200_000)
    assert sent["type"] == "0x0" and sent["gasPrice"] == hex(2 * 10**9)
    assert sent["value"] == hex(CMT)
    assert sent["to"] == STAKING
