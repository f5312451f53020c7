"""Conformance walk: every method a dev node serves, called with realistic params, its result
validated against the execution-apis OpenRPC result schema.

Rules:

* The served set is ``build_methods(node)`` of a dev node. Every served method needs a step in
  :data:`STEPS` (the walk fails otherwise, so a new method forces a new case), and a step for a
  method no longer served fails too.
* A method in the spec is checked against its result schema. A method absent from the spec
  must be listed in :data:`NOT_IN_SPEC` with the reason and a small explicit shape check; a
  method listed there that the spec has fails the walk (the schema should be used instead).
* The chain has blocks with EIP-1559, legacy and EIP-2930 transfers, a deployed TestToken and
  its Transfer logs. Steps run in order over one node: filters and subscriptions are created
  before the blocks they report, the pool is filled with automine off (so txpool_* and pending
  transactions are not empty), and the dev edits run inside evm_snapshot / evm_revert.
* The ``cmt_*`` steps (``CMT_STEPS``, ``CMT_DEV_STEPS``): OWNER declares a candidacy and uses
  every staking and governance method; each transaction is followed by a query repeated until
  its effect shows. cmt_verifyCandidacy impersonates the default verifier (the zero address)
  inside the snapshot bracket.
* All failures of the walk are reported together (method, params, result, schema error).
* Error codes: an unknown method is -32601, malformed params -32602.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from jsonschema import Draft201909Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT201909
from rpc_harness import CHAIN_ID, KEYS, SPEC_URI, HttpReply, ServerThread
from web3 import Web3
from websockets.sync.client import ClientConnection, connect

from cybermiles.crypto.keccak import keccak256
from cybermiles.node.node import Node
from cybermiles.rpc.methods import build_methods

GWEI = 10**9
SUPPLY = 10**24
ARTIFACT = Path(__file__).resolve().parents[2] / "contracts" / "build" / "TestToken.json"
OWNER, ALICE, BOB, CAROL = KEYS[0], KEYS[1], KEYS[2], KEYS[3]  # the node holds OWNER's key
NOBODY = "0x" + "5a" * 20
TIMEOUT = 10.0


# --- the chain the walk reads -----------------------------------------------------------------


def selector(signature: str) -> str:
    return "0x" + keccak256(signature.encode())[:4].hex()


def token_call(signature: str, types: list[str], args: list[Any]) -> str:
    return selector(signature) + abi_encode(types, args).hex()


def balance_slot(holder: str) -> int:
    """TestToken's ``balanceOf`` mapping lives at slot 0."""
    return int.from_bytes(keccak256(bytes(12) + bytes.fromhex(holder[2:]) + bytes(32)), "big")


def sign(w3: Web3, account: LocalAccount, tx: dict[str, Any]) -> str:
    """``tx`` signed with the account's pending nonce (EIP-1559 fees unless given)."""
    fees = {} if "gasPrice" in tx else {"maxFeePerGas": 2 * GWEI, "maxPriorityFeePerGas": GWEI}
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    full = {"chainId": CHAIN_ID, "nonce": nonce, "gas": 200_000, **fees, **tx}
    return "0x" + bytes(account.sign_transaction(full).raw_transaction).hex()


def mined(w3: Web3, raw: str) -> Any:
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(raw), timeout=30, poll_latency=0.05
    )
    assert receipt.status == 1
    return receipt


@dataclass
class Chain:
    """What the setup mined, plus results the walk saves for later steps."""

    w3: Web3
    token: str  # checksummed
    deploy_tx: str
    transfer_tx: str  # TestToken.transfer: one Transfer log
    transfer_block: int
    transfer_block_hash: str
    legacy_tx: str
    saved: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def chain(w3: Web3) -> Chain:
    artifact = json.loads(ARTIFACT.read_text())
    code = artifact["bytecode"] + abi_encode(["uint256"], [SUPPLY]).hex()
    deploy = mined(w3, sign(w3, OWNER, {"data": code, "gas": 3_000_000}))
    token = str(deploy.contractAddress)
    data = token_call("transfer(address,uint256)", ["address", "uint256"], [ALICE.address, 1000])
    transfer = mined(w3, sign(w3, OWNER, {"to": token, "data": data}))
    legacy = mined(w3, sign(w3, BOB, {"to": ALICE.address, "value": 7, "gasPrice": 2 * GWEI}))
    access_list = [{"address": token, "storageKeys": ["0x" + "00" * 32]}]
    eip2930 = {"type": 1, "to": ALICE.address, "value": 3, "gasPrice": GWEI}
    mined(w3, sign(w3, CAROL, {**eip2930, "accessList": access_list}))
    return Chain(
        w3=w3,
        token=token,
        deploy_tx="0x" + bytes(deploy.transactionHash).hex(),
        transfer_tx="0x" + bytes(transfer.transactionHash).hex(),
        transfer_block=transfer.blockNumber,
        transfer_block_hash="0x" + bytes(transfer.blockHash).hex(),
        legacy_tx="0x" + bytes(legacy.transactionHash).hex(),
    )


# --- transports -------------------------------------------------------------------------------


class Client:
    """JSON-RPC over HTTP, and over one WebSocket for the methods that need a session."""

    def __init__(self, post: Callable[..., HttpReply], ws: ClientConnection) -> None:
        self.post = post
        self.ws = ws
        self.ids = itertools.count(1)

    def request(self, method: str, params: list[Any], *, ws: bool = False) -> dict[str, Any]:
        message = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params}
        if not ws:
            reply = self.post(message)
            assert reply.status == 200, reply.body
            return dict(reply.json())
        self.ws.send(json.dumps(message))
        while True:  # skip subscription notifications
            doc = json.loads(self.ws.recv(timeout=TIMEOUT))
            if doc.get("id") == message["id"]:
                return dict(doc)


@pytest.fixture(scope="module")
def client(server: ServerThread, post: Callable[..., HttpReply]) -> Iterator[Client]:
    with connect(server.url.replace("http://", "ws://")) as ws:
        yield Client(post, ws)


# --- shape checks for methods the spec does not have ------------------------------------------

QUANTITY = re.compile(r"0x(0|[1-9a-f][0-9a-f]*)")
DECIMAL = re.compile(r"0|[1-9][0-9]*")


def is_quantity(value: Any) -> bool:
    return isinstance(value, str) and QUANTITY.fullmatch(value) is not None


def is_data(size: int) -> Callable[[Any], bool]:
    pattern = re.compile(f"0x[0-9a-f]{{{2 * size}}}")
    return lambda value: isinstance(value, str) and pattern.fullmatch(value) is not None


def is_decimal(value: Any) -> bool:
    return isinstance(value, str) and DECIMAL.fullmatch(value) is not None


def is_true(value: Any) -> bool:
    return value is True


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def is_inspect(value: Any) -> bool:
    """``{"pending"|"queued": {checksummed sender: {decimal nonce: summary string}}}``."""
    if not isinstance(value, dict) or set(value) != {"pending", "queued"}:
        return False
    for senders in value.values():
        for sender, by_nonce in senders.items():
            if not Web3.is_checksum_address(sender) or not isinstance(by_nonce, dict):
                return False
            for nonce, line in by_nonce.items():
                if not is_decimal(nonce) or not isinstance(line, str) or " wei + " not in line:
                    return False
    return True


def is_height_data(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """A ``cmt_query*`` answer: ``{"height": N, "data": ...}`` with ``check(data)``."""

    def valid(value: Any) -> bool:
        return (
            isinstance(value, dict)
            and set(value) == {"height", "data"}
            and isinstance(value["height"], int)
            and value["height"] >= 0
            and check(value["data"])
        )

    return valid


def is_list_of(*keys: str) -> Callable[[Any], bool]:
    return lambda value: (
        isinstance(value, list)
        and all(isinstance(item, dict) and set(keys) <= set(item) for item in value)
    )


def is_candidate(value: Any) -> bool:
    return value is None or is_list_of("owner_address", "shares", "voting_power", "state")([value])


HARDHAT = "Hardhat dev method (development chains only): no execution-apis schema"
CMT = "CyberMiles cmt namespace (docs/rpc.md): not in the execution-apis spec"

NOT_IN_SPEC: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "net_listening": ("net namespace: only net_version is in the spec", is_bool),
    "net_peerCount": ("net namespace: only net_version is in the spec", is_quantity),
    "web3_clientVersion": (
        "web3 namespace is not in the spec",
        lambda v: isinstance(v, str) and v.startswith("cybermiles/v"),
    ),
    "web3_sha3": ("web3 namespace is not in the spec", is_data(32)),
    "eth_subscribe": ("pub/sub is geth's WebSocket API, not in the OpenRPC document", is_quantity),
    "eth_unsubscribe": ("pub/sub is geth's WebSocket API, not in the OpenRPC document", is_true),
    "txpool_inspect": ("geth only: the spec has txpool_status/content/contentFrom", is_inspect),
    "personal_sign": ("personal namespace (geth, wallets): not in the spec", is_data(65)),
    "eth_signTypedData_v4": ("EIP-712 wallet method (MetaMask, Hardhat)", is_data(65)),
    "evm_mine": (HARDHAT, lambda v: v == "0"),
    "hardhat_mine": (HARDHAT, is_true),
    "evm_setAutomine": (HARDHAT, is_true),
    "evm_increaseTime": (HARDHAT, is_decimal),
    "evm_setNextBlockTimestamp": (HARDHAT, is_decimal),
    "hardhat_setBalance": (HARDHAT, is_true),
    "hardhat_setCode": (HARDHAT, is_true),
    "hardhat_setNonce": (HARDHAT, is_true),
    "hardhat_setStorageAt": (HARDHAT, is_true),
    "hardhat_impersonateAccount": (HARDHAT, is_true),
    "hardhat_stopImpersonatingAccount": (HARDHAT, is_true),
    "evm_snapshot": (HARDHAT, is_quantity),
    "evm_revert": (HARDHAT, is_true),
    **{
        f"cmt_{name}": (CMT, is_data(32))
        for name in (
            "declareCandidacy",
            "updateCandidacy",
            "withdrawCandidacy",
            "activateCandidacy",
            "deactivateCandidacy",
            "verifyCandidacy",
            "setCompRate",
            "delegate",
            "withdraw",
            "proposeTransferFund",
            "proposeChangeParam",
            "proposeUpgrade",
            "proposeText",
            "vote",
        )
    },
    "cmt_queryValidators": (
        CMT,
        is_height_data(is_list_of("owner_address", "shares", "voting_power", "state", "rank")),
    ),
    "cmt_queryValidator": (CMT, is_height_data(is_candidate)),
    "cmt_queryDelegator": (
        CMT,
        is_height_data(is_list_of("validator_address", "shares", "award_amount", "comp_rate")),
    ),
    "cmt_queryAwardInfos": (CMT, is_height_data(is_list_of("address", "state", "amount"))),
    "cmt_queryProposals": (
        CMT,
        is_height_data(is_list_of("id", "type", "proposer", "result", "detail", "votes")),
    ),
    "cmt_queryParams": (
        CMT,
        is_height_data(lambda v: isinstance(v, dict) and "proposal_deposit" in v),
    ),
    "cmt_consensusState": (
        CMT,
        lambda v: (
            isinstance(v, dict)
            and set(v) == {"height", "round", "step", "committed", "peers", "node_id"}
            and v["height"] == v["committed"] + 1
        ),
    ),
}


# --- the walk ---------------------------------------------------------------------------------

Params = Callable[[Chain], list[Any]]
Validate = Callable[[str, Any], list[str]]  # (JSON pointer into the spec, value) -> errors


def make_validate(spec: dict[str, Any]) -> Validate:
    """Draft 2019-09 validation against a schema of the spec, ``$ref``s resolved through a
    ``referencing`` registry; each error is reported at its leaves (see :func:`explain`)."""
    resource = Resource.from_contents(spec, default_specification=DRAFT201909)
    registry: Registry = Registry().with_resource(SPEC_URI, resource)

    def validate(pointer: str, value: Any) -> list[str]:
        validator = Draft201909Validator({"$ref": SPEC_URI + pointer}, registry=registry)
        return [explain(error) for error in validator.iter_errors(value)]

    return validate


def explain(error: ValidationError) -> str:
    """An error at its leaves: a oneOf/anyOf failure descends into the branches that came
    closest (of the right JSON type, then fewest errors), listing each when several tie."""
    if not error.context:
        path = "/".join(map(str, error.absolute_path)) or "(root)"
        return f"at {path}: {error.message[:200]}"
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def distance(errors: list[ValidationError]) -> tuple[bool, int]:
        wrong_type = any(e.validator == "type" and not e.relative_path for e in errors)
        return wrong_type, len(errors)

    best = min(distance(errors) for errors in branches.values())
    closest = [errors for errors in branches.values() if distance(errors) == best]
    return " OR ".join("; ".join(explain(sub) for sub in errors) for errors in closest)


BLOCK_CONTEXT = ("blockHash", "blockNumber", "blockTimestamp", "transactionIndex")


def pending_transaction(result: Any, validate: Validate) -> list[str]:
    """A pool transaction as geth answers it: block context fields null.

    Known spec gap: eth_getTransactionByHash's TransactionInfo requires the block context as
    strings, so the spec cannot describe a transaction that is not mined yet. The rest must be
    a TransactionSigned with hash and from.
    """
    if not isinstance(result, dict):
        return [f"expected a transaction object, got {result!r}"]
    errors = [f"{name} is not null" for name in BLOCK_CONTEXT if result.get(name, 0) is not None]
    rest = {name: value for name, value in result.items() if name not in BLOCK_CONTEXT}
    errors += validate("#/components/schemas/TransactionSigned", rest)
    errors += validate("#/components/schemas/hash32", rest.get("hash"))
    errors += validate("#/components/schemas/address", rest.get("from"))
    return errors


@dataclass(frozen=True)
class Step:
    """One call. ``save`` keeps the result in ``chain.saved``; ``until`` repeats the call (for
    events delivered after a commit) until the result satisfies it or TIMEOUT passes; ``check``
    replaces the result schema for a documented spec gap."""

    method: str
    params: Params = lambda c: []
    ws: bool = False
    save: str | None = None
    until: Callable[[Any], bool] | None = None
    check: Callable[[Any, Validate], list[str]] | None = None


def non_empty(value: Any) -> bool:
    return bool(value)


def head_timestamp(c: Chain) -> int:
    return int(c.w3.eth.get_block("latest").timestamp)


TYPED_DATA = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "chainId", "type": "uint256"},
        ],
        "Mail": [{"name": "to", "type": "address"}, {"name": "contents", "type": "string"}],
    },
    "primaryType": "Mail",
    "domain": {"name": "conformance", "chainId": CHAIN_ID},
    "message": {"to": NOBODY, "contents": "hello"},
}


def transfer_to_bob(c: Chain) -> dict[str, Any]:
    data = token_call("transfer(address,uint256)", ["address", "uint256"], [BOB.address, 1])
    return {"from": OWNER.address, "to": c.token, "data": data}


# The cmt_* walk: OWNER (no stake yet) declares a candidacy and exercises every cmt_ method;
# each transaction is followed by a query repeated until the transaction's effect shows.
CMT_WEI = 10**18
ZERO = "0x" + "00" * 20  # the default ``verifier``: impersonated for cmt_verifyCandidacy


def own(**fields: Any) -> dict[str, Any]:
    return {"from": OWNER.address, **fields}


def candidate_where(check: Callable[[dict[str, Any]], bool]) -> Callable[[Any], bool]:
    return lambda answer: answer["data"] is not None and check(answer["data"])


def own_delegation_where(check: Callable[[dict[str, Any]], bool]) -> Callable[[Any], bool]:
    return lambda answer: any(
        d["validator_address"] == OWNER.address and check(d) for d in answer["data"]
    )


def proposals_at_least(count: int) -> Callable[[Any], bool]:
    return lambda answer: len(answer["data"]) >= count


CMT_STEPS: list[Step] = [
    Step(
        "cmt_declareCandidacy",
        lambda c: [
            own(
                pubKey="0x" + "c1" * 32,
                maxAmount=str(100_000 * CMT_WEI),
                compRate="0.2",
                description={"name": "conformance"},
            )
        ],
    ),
    Step("cmt_queryValidator", lambda c: [OWNER.address], until=candidate_where(bool)),
    Step("cmt_updateCandidacy", lambda c: [own(description={"website": "https://x.example"})]),
    Step(
        "cmt_queryValidators",
        lambda c: ["latest"],
        until=lambda a: any(v["description"]["website"] == "https://x.example" for v in a["data"]),
    ),
    Step(
        "cmt_delegate",
        lambda c: [own(validatorAddress=OWNER.address, amount=str(2_000 * CMT_WEI))],
    ),
    Step(
        "cmt_queryDelegator",
        lambda c: [OWNER.address],
        until=own_delegation_where(lambda d: int(d["delegate_amount"]) == 12_000 * CMT_WEI),
    ),
    Step("cmt_setCompRate", lambda c: [own(delegatorAddress=OWNER.address, compRate="0.1")]),
    Step(
        "cmt_queryDelegator",
        lambda c: [OWNER.address, "latest"],
        until=own_delegation_where(lambda d: d["comp_rate"] == "0.1"),
    ),
    Step("cmt_withdraw", lambda c: [own(validatorAddress=OWNER.address, amount=hex(CMT_WEI))]),
    Step(
        "cmt_queryDelegator",
        lambda c: [OWNER.address],
        until=own_delegation_where(lambda d: int(d["withdraw_amount"]) == CMT_WEI),
    ),
    Step("cmt_deactivateCandidacy", lambda c: [own()]),
    Step(
        "cmt_queryValidator",
        lambda c: [OWNER.address],
        until=candidate_where(lambda v: v["active"] == "N"),
    ),
    Step("cmt_activateCandidacy", lambda c: [own()]),
    Step(
        "cmt_queryValidator",
        lambda c: [OWNER.address, "latest"],
        until=candidate_where(lambda v: v["active"] == "Y"),
    ),
    Step("cmt_proposeChangeParam", lambda c: [own(name="max_vals", value="21")]),
    Step("cmt_queryProposals", until=proposals_at_least(1)),
    Step("cmt_consensusState"),
    Step("cmt_vote", lambda c: [own(proposalId="1", answer="Y")]),
    Step(
        "cmt_queryParams",
        lambda c: ["latest"],
        until=lambda a: a["data"]["max_vals"] == 21,
    ),
    Step(
        "cmt_proposeTransferFund",
        lambda c: [own(transferTo=NOBODY, amount="1", reason="conformance")],
    ),
    Step("cmt_queryProposals", until=proposals_at_least(2)),
    Step(
        "cmt_proposeUpgrade",
        lambda c: [own(name="later", version="99.0.0", height=str(10**9))],
    ),
    Step("cmt_queryProposals", until=proposals_at_least(3)),
    Step("cmt_proposeText", lambda c: [own(title="hello", text="world")]),
    Step("cmt_queryProposals", lambda c: ["latest"], until=proposals_at_least(4)),
    Step("cmt_queryAwardInfos"),
    Step("cmt_queryAwardInfos", lambda c: ["0x0"]),
    Step("cmt_queryValidators", lambda c: [0]),
]

# Inside the evm_snapshot / evm_revert bracket: the verifier (the zero address by default) is
# impersonated to verify OWNER, then the candidacy is withdrawn.
CMT_DEV_STEPS: list[Step] = [
    Step("hardhat_impersonateAccount", lambda c: [ZERO]),
    Step("hardhat_setBalance", lambda c: [ZERO, hex(CMT_WEI)]),
    Step(
        "cmt_verifyCandidacy",
        lambda c: [{"from": ZERO, "candidateAddress": OWNER.address, "verified": True}],
    ),
    Step(
        "cmt_queryValidator",
        lambda c: [OWNER.address],
        until=candidate_where(lambda v: v["verified"] == "Y"),
    ),
    Step("hardhat_stopImpersonatingAccount", lambda c: [ZERO]),
    Step("cmt_withdrawCandidacy", lambda c: [own()]),
    Step("cmt_queryValidator", lambda c: [OWNER.address], until=lambda a: a["data"] is None),
]

STEPS: list[Step] = [
    # identity
    Step("eth_chainId"),
    Step("eth_syncing"),
    Step("eth_blockNumber"),
    Step("eth_gasPrice"),
    Step("eth_maxPriorityFeePerGas"),
    Step("eth_accounts"),
    Step("net_version"),
    Step("net_listening"),
    Step("net_peerCount"),
    Step("web3_clientVersion"),
    Step("web3_sha3", lambda c: ["0x68656c6c6f"]),
    # state
    Step("eth_getBalance", lambda c: [ALICE.address, "latest"]),
    Step("eth_getBalance", lambda c: [ALICE.address, "earliest"]),
    Step("eth_getTransactionCount", lambda c: [OWNER.address, "pending"]),
    Step("eth_getCode", lambda c: [c.token, {"blockNumber": hex(c.transfer_block)}]),
    Step("eth_getStorageAt", lambda c: [c.token, hex(balance_slot(ALICE.address)), "latest"]),
    Step("eth_getProof", lambda c: [c.token, [hex(balance_slot(ALICE.address)), "0x9"]]),
    Step("eth_getProof", lambda c: [NOBODY, ["0x0"], "latest"]),
    # transactions, receipts, blocks
    Step("eth_getTransactionByHash", lambda c: [c.transfer_tx]),
    Step("eth_getTransactionByHash", lambda c: [c.legacy_tx]),
    Step("eth_getTransactionReceipt", lambda c: [c.transfer_tx]),
    Step("eth_getTransactionReceipt", lambda c: [c.deploy_tx]),
    Step("eth_getTransactionByBlockNumberAndIndex", lambda c: [hex(c.transfer_block), "0x0"]),
    Step("eth_getTransactionByBlockHashAndIndex", lambda c: [c.transfer_block_hash, "0x0"]),
    Step("eth_getBlockByNumber", lambda c: [hex(c.transfer_block), True]),
    Step("eth_getBlockByNumber", lambda c: ["latest", False]),
    Step("eth_getBlockByHash", lambda c: [c.transfer_block_hash, True]),
    Step("eth_getBlockTransactionCountByNumber", lambda c: [hex(c.transfer_block)]),
    Step("eth_getBlockTransactionCountByHash", lambda c: [c.transfer_block_hash]),
    Step("eth_getBlockReceipts", lambda c: [hex(c.transfer_block)]),
    Step("eth_getLogs", lambda c: [{"fromBlock": "earliest", "toBlock": "latest"}]),
    Step("eth_getLogs", lambda c: [{"blockHash": c.transfer_block_hash, "address": c.token}]),
    # simulation and fees
    Step(
        "eth_call",
        lambda c: [
            {"to": c.token, "data": token_call("balanceOf(address)", ["address"], [ALICE.address])},
            "latest",
        ],
    ),
    Step("eth_estimateGas", lambda c: [transfer_to_bob(c)]),
    Step("eth_createAccessList", lambda c: [transfer_to_bob(c), "latest"]),
    Step("eth_feeHistory", lambda c: ["0x4", "latest", [25, 75]]),
    # filters and subscriptions, before the blocks they report
    Step("eth_newFilter", lambda c: [{"address": c.token}], save="log_filter"),
    Step("eth_newBlockFilter", save="block_filter"),
    Step("eth_newPendingTransactionFilter", save="pending_filter"),
    Step("eth_subscribe", lambda c: ["newHeads"], ws=True, save="heads_sub"),
    Step("eth_subscribe", lambda c: ["logs", {"address": c.token}], ws=True),
    # the pool, with automine off; then a block mined by hand
    Step("evm_setAutomine", lambda c: [False]),
    Step(
        "eth_sendRawTransaction",
        lambda c: [sign(c.w3, ALICE, {"to": c.token, "data": transfer_to_bob(c)["data"]})],
        save="raw_tx",
    ),
    Step("eth_getTransactionByHash", lambda c: [c.saved["raw_tx"]], check=pending_transaction),
    Step("eth_sendTransaction", lambda c: [transfer_to_bob(c)]),
    Step("eth_signTransaction", lambda c: [{"from": OWNER.address, "to": NOBODY, "value": "0x1"}]),
    Step("eth_sign", lambda c: [OWNER.address, "0xdeadbeef"]),
    Step("personal_sign", lambda c: ["0xdeadbeef", OWNER.address]),
    Step("eth_signTypedData_v4", lambda c: [OWNER.address, TYPED_DATA]),
    Step("txpool_status"),
    Step("txpool_content"),
    Step("txpool_contentFrom", lambda c: [ALICE.address]),
    Step("txpool_inspect"),
    Step("evm_mine"),
    Step("eth_getFilterChanges", lambda c: [c.saved["log_filter"]], until=non_empty),
    Step("eth_getFilterChanges", lambda c: [c.saved["block_filter"]], until=non_empty),
    Step("eth_getFilterChanges", lambda c: [c.saved["pending_filter"]], until=non_empty),
    Step("eth_getFilterLogs", lambda c: [c.saved["log_filter"]]),
    Step("eth_uninstallFilter", lambda c: [c.saved["log_filter"]]),
    Step("eth_unsubscribe", lambda c: [c.saved["heads_sub"]], ws=True),
    Step("evm_setAutomine", lambda c: [True]),
    # staking and governance (cmt_*)
    *CMT_STEPS,
    # dev edits, undone by evm_revert
    Step("evm_snapshot", save="snapshot"),
    Step("hardhat_mine", lambda c: ["0x2", "0x1"]),
    Step("evm_increaseTime", lambda c: [60]),
    Step("evm_setNextBlockTimestamp", lambda c: [hex(head_timestamp(c) + 3600)]),
    Step("hardhat_setBalance", lambda c: [NOBODY, hex(10**18)]),
    Step("hardhat_setCode", lambda c: [NOBODY, "0x600160005260206000f3"]),
    Step("hardhat_setNonce", lambda c: [NOBODY, "0x5"]),
    Step("hardhat_setStorageAt", lambda c: [NOBODY, "0x1", "0x" + "00" * 31 + "2a"]),
    Step("hardhat_impersonateAccount", lambda c: [NOBODY]),
    Step("hardhat_stopImpersonatingAccount", lambda c: [NOBODY]),
    *CMT_DEV_STEPS,
    Step("evm_revert", lambda c: [c.saved["snapshot"]]),
]


def run_step(step: Step, chain: Chain, client: Client, validate: Validate, index: int) -> list[str]:
    """Run one step; return its failure reports (none if it conforms)."""
    params = step.params(chain)
    deadline = time.monotonic() + TIMEOUT
    while True:
        doc = client.request(step.method, params, ws=step.ws)
        if "error" in doc or step.until is None or step.until(doc["result"]):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    call = f"{step.method}({json.dumps(params)[:200]})"
    if "error" in doc:
        return [f"{call} -> error {doc['error']}"]
    result = doc["result"]
    if step.save is not None:
        chain.saved[step.save] = result
    if step.until is not None and not step.until(result):
        return [f"{call} -> {result!r}: still unsatisfied after {TIMEOUT}s"]
    if step.check is not None:
        errors = step.check(result, validate)
    elif step.method in NOT_IN_SPEC:
        errors = [] if NOT_IN_SPEC[step.method][1](result) else ["bad shape"]
    else:
        errors = validate(f"#/methods/{index}/result/schema", result)
    shown = json.dumps(result)[:300]
    return [f"{call} -> {shown}: {error}" for error in errors]


def test_every_served_method_conforms(
    node: Node, chain: Chain, client: Client, spec: dict[str, Any]
) -> None:
    assert node.dev
    served = set(build_methods(node).names())
    covered = {step.method for step in STEPS}
    assert not served - covered, f"served methods without a conformance step: {served - covered}"
    assert not covered - served, f"steps for methods not served: {covered - served}"
    index = {method["name"]: i for i, method in enumerate(spec["methods"])}
    unchecked = served - set(index) - set(NOT_IN_SPEC)
    assert not unchecked, f"methods neither in the spec nor in NOT_IN_SPEC: {unchecked}"
    stale = set(NOT_IN_SPEC) & set(index)
    assert not stale, f"NOT_IN_SPEC lists methods the spec has (use its schema): {stale}"
    assert not set(NOT_IN_SPEC) - served, f"NOT_IN_SPEC lists unserved {set(NOT_IN_SPEC) - served}"

    validate = make_validate(spec)
    failures = [
        report
        for step in STEPS
        for report in run_step(step, chain, client, validate, index.get(step.method, -1))
    ]
    assert not failures, "non-conforming results:\n" + "\n".join(failures)


# --- error codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "code"),
    [
        ("eth_noSuchMethod", [], -32601),
        ("cmt_noSuchMethod", ["0x1"], -32601),
        ("eth_getBalance", ["0x1234"], -32602),  # short address
        ("eth_getBalance", [NOBODY, "latest", "extra"], -32602),  # too many arguments
        ("eth_getBlockByNumber", ["latest"], -32602),  # missing argument
        ("eth_getBlockByNumber", ["0x01", False], -32602),  # leading zero digit
        ("eth_getTransactionByHash", ["0x" + "11" * 31], -32602),  # 31-byte hash
        ("eth_call", ["not an object"], -32602),
        ("eth_getProof", [NOBODY, "0x0"], -32602),  # keys not an array
        ("eth_feeHistory", ["0x4", "latest", "25"], -32602),
        ("eth_getLogs", [{"fromBlock": "yesterday"}], -32602),
        ("eth_sendRawTransaction", ["0xzz"], -32602),
        ("evm_setAutomine", ["yes"], -32602),
        ("cmt_delegate", [{"from": NOBODY, "validatorAddress": NOBODY}], -32602),  # no amount
        ("cmt_queryValidators", ["yesterday"], -32602),
    ],
)
def test_error_codes(
    client: Client, chain: Chain, method: str, params: list[Any], code: int
) -> None:
    doc = client.request(method, params)
    assert "result" not in doc, doc
    assert doc["error"]["code"] == code, doc
