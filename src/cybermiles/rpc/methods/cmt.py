"""The ``cmt_*`` methods: staking and governance transactions and queries (CyberMiles names).

Transactions (``docs/staking.md`` has the rules; the modules' ABIs are
``contracts/interfaces/IStaking.sol`` and ``IGovernance.sol``):

* Each takes one object: ``from`` (an account the node signs for, as eth_sendTransaction:
  dev accounts, ``--unlock``'ed keystore accounts, impersonated ones), the method's fields,
  and optionally ``nonce``, ``gas``, ``gasPrice`` / ``maxFeePerGas`` /
  ``maxPriorityFeePerGas`` and ``type``, filled like eth_sendTransaction when missing
  (``rpc.methods.accounts.send``). The module call goes to ``0x…1000`` (staking) or
  ``0x…1001`` (governance), with the value a payable method needs, and the answer is the
  transaction hash. Unknown fields are refused (typos would otherwise silently take defaults).
* Amounts (wei): decimal strings, ``0x`` hex strings or JSON integers. Comp rates: decimal
  fractions ``"0.2"`` or 18-decimal fixed point integers (``"200000000000000000"``). pubKey: the
  32-byte Ed25519 key as ``0x`` hex (or base64, as CyberMiles printed it).
* ``cmt_declareCandidacy`` sends the self-stake ``maxAmount × self_staking_ratio / 10000``
  (current parameters). ``cmt_updateCandidacy`` fills every missing field (and description
  field) from the sender's candidacy and sends the extra self-stake when ``maxAmount`` rises.
  Proposals send ``deposit`` (default: the ``proposal_deposit`` parameter).
  ``cmt_vote`` answers: ``Y`` / ``N`` / ``A`` (also ``yes`` / ``no`` / ``abstain``, any case, or
  0 / 1 / 2).
* A malformed field is -32602 naming it (``invalid argument 0 (args.maxAmount): ...``). A call
  the module refuses fails when its gas is estimated, as eth_sendTransaction: code 3,
  ``execution reverted: <reason>``.

Queries take an optional trailing block (a number, a hex quantity or a tag; default
``latest``) and answer ``{"height": N, "data": ...}`` with the JSON of
``modules.staking.queries`` / ``modules.governance.queries``: cmt_queryValidators,
cmt_queryValidator(address), cmt_queryDelegator(address), cmt_queryAwardInfos,
cmt_queryProposals, cmt_queryParams. cmt_queryValidator answers ``data: null`` for an address
that is not a candidate.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from cybermiles.chain.errors import GenesisError
from cybermiles.chain.genesis import parse_comp_rate
from cybermiles.chain.params import WAD, Params
from cybermiles.crypto.address import to_checksum
from cybermiles.modules.addresses import GOVERNANCE, STAKING
from cybermiles.modules.framework.store import Backend, ReadOnlyBackend
from cybermiles.modules.governance import queries as gov_queries
from cybermiles.modules.params import read_params
from cybermiles.modules.staking import queries as staking_queries
from cybermiles.modules.staking.records import DESCRIPTION_FIELDS
from cybermiles.modules.staking.state import StakingState
from cybermiles.rpc import lookup
from cybermiles.rpc import params as p
from cybermiles.rpc.errors import ParamError
from cybermiles.rpc.methods.accounts import send
from cybermiles.rpc.registry import MethodTable

methods = MethodTable()

ARG = "args"  # the name of every transaction method's one argument
MAX_UINT256 = 2**256 - 1

# eth_sendTransaction fields a cmt_* object may carry besides its own.
TX_FIELDS = ("from", "nonce", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "type")

ANSWERS = {"y": 0, "yes": 0, "n": 1, "no": 1, "a": 2, "abstain": 2}


# --- argument parsing -------------------------------------------------------------------------


def _object(value: Any, fields: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    """The one argument: an object with ``from``, tx fields and ``fields`` (``required`` ones)."""
    if not isinstance(value, dict):
        raise ParamError(ARG, "expected an object with from and the method's fields")
    allowed = set(TX_FIELDS) | set(fields)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ParamError(
            f"{ARG}.{unknown[0]}",
            f"unknown field (allowed: {', '.join(sorted(allowed))})",
        )
    for key in ("from", *required):
        if value.get(key) is None:
            raise ParamError(f"{ARG}.{key}", "missing required field")
    return value


def amount(value: Any, name: str) -> int:
    """A non-negative integer: decimal string, ``0x`` hex string or JSON integer."""
    if isinstance(value, bool):
        raise ParamError(name, "expected an amount (decimal string or 0x hex), got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            if text[:2] in ("0x", "0X"):
                number = int(text[2:], 16)
            elif text.isdigit():
                number = int(text, 10)
            else:
                raise ValueError(text)
        except ValueError:
            raise ParamError(
                name, f"expected a decimal integer or 0x hex string, got {value!r}"
            ) from None
    else:
        raise ParamError(name, f"expected an amount (decimal string or 0x hex), got {value!r}")
    if not 0 <= number <= MAX_UINT256:
        raise ParamError(name, f"{value!r} is out of range [0, 2^256-1]")
    return number


def comp_rate(value: Any, name: str) -> int:
    """``"0.2"`` or an 18-decimal fixed-point integer (decimal, hex or JSON integer), ≤ 1e18."""
    if isinstance(value, str) and value.strip()[:2] in ("0x", "0X"):
        value = amount(value, name)
    try:
        return parse_comp_rate(value, name)
    except GenesisError:
        raise ParamError(
            name,
            f'expected a fraction between 0 and 1 ("0.2") or an 18-decimal fixed point integer '
            f"up to {WAD}, got {value!r}",
        ) from None


def pub_key(value: Any, name: str) -> bytes:
    """A 32-byte Ed25519 public key: ``0x`` + 64 hex digits, or base64."""
    if isinstance(value, str) and not value.startswith(("0x", "0X")):
        try:
            key = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ParamError(name, "expected 0x + 64 hex digits or base64 of 32 bytes") from None
        if len(key) != 32:
            raise ParamError(name, f"an Ed25519 public key has 32 bytes, got {len(key)}")
        return key
    return p.fixed_bytes(value, name, 32, "an Ed25519 public key")


def text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ParamError(name, f"expected a string, got {value!r}")
    return value


def answer(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1, 2):
        return value
    if isinstance(value, str) and value.strip().lower() in ANSWERS:
        return ANSWERS[value.strip().lower()]
    raise ParamError(name, f"expected Y, N or A (yes, no, abstain), got {value!r}")


def description(value: Any, name: str, current: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The five description strings; missing ones are ``current``'s (or empty)."""
    if not isinstance(value, dict):
        raise ParamError(name, f"expected an object with {', '.join(DESCRIPTION_FIELDS)}")
    unknown = sorted(set(value) - set(DESCRIPTION_FIELDS))
    if unknown:
        raise ParamError(
            f"{name}.{unknown[0]}", f"unknown field (allowed: {', '.join(DESCRIPTION_FIELDS)})"
        )
    base = current or ("",) * len(DESCRIPTION_FIELDS)
    return tuple(
        old if value.get(field) is None else text(value[field], f"{name}.{field}")
        for field, old in zip(DESCRIPTION_FIELDS, base, strict=True)
    )


def _field(obj: dict[str, Any], key: str, parse: Callable[[Any, str], Any]) -> Any:
    value = obj.get(key)
    return None if value is None else parse(value, f"{ARG}.{key}")


# --- sending ----------------------------------------------------------------------------------


def _send(node: Any, obj: dict[str, Any], to: bytes, data: bytes, value: int = 0) -> str:
    """Send the module call ``data`` to ``to`` from ``obj['from']`` like eth_sendTransaction."""
    tx = {key: obj[key] for key in TX_FIELDS if obj.get(key) is not None}
    tx.update(to="0x" + to.hex(), data="0x" + data.hex(), value=hex(value))
    return send(node, tx, ARG)


# The module classes load on first use (the chain loads them with its precompiles); importing
# them here would make every RPC import pay for, and depend on, both modules.


def _staking(name: str, *args: Any) -> bytes:
    from cybermiles.modules.staking.module import StakingModule

    return StakingModule.calldata(name, *args)


def _governance(name: str, *args: Any) -> bytes:
    from cybermiles.modules.governance.module import GovernanceModule

    return GovernanceModule.calldata(name, *args)


def _head_params(node: Any) -> Params:
    with node.chain.state_at() as view:
        return read_params(ReadOnlyBackend(view))


def self_stake_for(max_amount: int, params: Params) -> int:
    from cybermiles.modules.staking.module import self_stake_for as rule

    return rule(max_amount, params)


def _sender(obj: dict[str, Any]) -> bytes:
    return p.address(obj["from"], f"{ARG}.from")


# --- staking transactions ---------------------------------------------------------------------

DECLARE_FIELDS = ("pubKey", "maxAmount", "compRate", "description")


@methods.method("cmt_declareCandidacy")
def declare_candidacy(node: Any, args: Any) -> str:
    obj = _object(args, DECLARE_FIELDS, ("pubKey", "maxAmount", "compRate"))
    key = _field(obj, "pubKey", pub_key)
    max_amount = _field(obj, "maxAmount", amount)
    rate = _field(obj, "compRate", comp_rate)
    desc = description(obj.get("description") or {}, f"{ARG}.description")
    _sender(obj)
    value = self_stake_for(max_amount, _head_params(node))
    data = _staking("declareCandidacy", key, max_amount, rate, desc)
    return _send(node, obj, STAKING, data, value)


@methods.method("cmt_updateCandidacy")
def update_candidacy(node: Any, args: Any) -> str:
    obj = _object(args, DECLARE_FIELDS, ())
    sender = _sender(obj)
    key = _field(obj, "pubKey", pub_key)
    max_amount = _field(obj, "maxAmount", amount)
    rate = _field(obj, "compRate", comp_rate)
    with node.chain.state_at() as view:
        backend = ReadOnlyBackend(view)
        params = read_params(backend)
        current = StakingState(backend).get_candidate(sender)
    # Not a candidate: send what was given and let the module refuse it with its reason.
    old_desc = None if current is None else tuple(current.description)
    if obj.get("description") is None:
        desc = old_desc or ("",) * len(DESCRIPTION_FIELDS)
    else:
        desc = description(obj["description"], f"{ARG}.description", old_desc)
    if key is None:
        key = bytes(32) if current is None else bytes(current.pub_key)
    if rate is None:
        rate = 0 if current is None else current.comp_rate
    value = 0
    if max_amount is None:
        max_amount = 0 if current is None else current.max_amount
    elif current is not None and max_amount > current.max_amount:
        value = max(self_stake_for(max_amount, params) - current.self_stake, 0)
    data = _staking("updateCandidacy", key, max_amount, rate, desc)
    return _send(node, obj, STAKING, data, value)


@methods.method("cmt_withdrawCandidacy")
def withdraw_candidacy(node: Any, args: Any) -> str:
    obj = _object(args, (), ())
    _sender(obj)
    return _send(node, obj, STAKING, _staking("withdrawCandidacy"))


@methods.method("cmt_activateCandidacy")
def activate_candidacy(node: Any, args: Any) -> str:
    obj = _object(args, (), ())
    _sender(obj)
    return _send(node, obj, STAKING, _staking("activateCandidacy"))


@methods.method("cmt_deactivateCandidacy")
def deactivate_candidacy(node: Any, args: Any) -> str:
    obj = _object(args, (), ())
    _sender(obj)
    return _send(node, obj, STAKING, _staking("deactivateCandidacy"))


@methods.method("cmt_verifyCandidacy")
def verify_candidacy(node: Any, args: Any) -> str:
    obj = _object(args, ("candidateAddress", "verified"), ("candidateAddress", "verified"))
    _sender(obj)
    candidate = to_checksum(_field(obj, "candidateAddress", p.address))
    verified = _field(obj, "verified", p.boolean)
    return _send(node, obj, STAKING, _staking("verifyCandidacy", candidate, verified))


@methods.method("cmt_setCompRate")
def set_comp_rate(node: Any, args: Any) -> str:
    obj = _object(args, ("delegatorAddress", "compRate"), ("delegatorAddress", "compRate"))
    _sender(obj)
    delegator = to_checksum(_field(obj, "delegatorAddress", p.address))
    rate = _field(obj, "compRate", comp_rate)
    return _send(node, obj, STAKING, _staking("setCompRate", delegator, rate))


@methods.method("cmt_delegate")
def delegate(node: Any, args: Any) -> str:
    obj = _object(args, ("validatorAddress", "amount"), ("validatorAddress", "amount"))
    _sender(obj)
    candidate = to_checksum(_field(obj, "validatorAddress", p.address))
    value = _field(obj, "amount", amount)
    return _send(node, obj, STAKING, _staking("delegate", candidate), value)


@methods.method("cmt_withdraw")
def withdraw(node: Any, args: Any) -> str:
    obj = _object(args, ("validatorAddress", "amount"), ("validatorAddress", "amount"))
    _sender(obj)
    candidate = to_checksum(_field(obj, "validatorAddress", p.address))
    value = _field(obj, "amount", amount)
    return _send(node, obj, STAKING, _staking("withdraw", candidate, value))


# --- governance transactions ------------------------------------------------------------------


def _deposit(node: Any, obj: dict[str, Any]) -> int:
    given = _field(obj, "deposit", amount)
    return _head_params(node).proposal_deposit if given is None else given


@methods.method("cmt_proposeTransferFund")
def propose_transfer_fund(node: Any, args: Any) -> str:
    fields = ("transferTo", "amount", "reason", "deposit")
    obj = _object(args, fields, ("transferTo", "amount"))
    _sender(obj)
    to = to_checksum(_field(obj, "transferTo", p.address))
    value = _field(obj, "amount", amount)
    reason = _field(obj, "reason", text) or ""
    data = _governance("proposeTransferFund", to, value, reason)
    return _send(node, obj, GOVERNANCE, data, _deposit(node, obj))


@methods.method("cmt_proposeChangeParam")
def propose_change_param(node: Any, args: Any) -> str:
    obj = _object(args, ("name", "value", "height", "deposit"), ("name", "value"))
    _sender(obj)
    name = _field(obj, "name", text)
    value = _field(obj, "value", amount)
    height = _field(obj, "height", amount) or 0
    data = _governance("proposeChangeParam", name, value, height)
    return _send(node, obj, GOVERNANCE, data, _deposit(node, obj))


@methods.method("cmt_proposeUpgrade")
def propose_upgrade(node: Any, args: Any) -> str:
    obj = _object(args, ("name", "version", "height", "deposit"), ("name", "version", "height"))
    _sender(obj)
    name = _field(obj, "name", text)
    version = _field(obj, "version", text)
    height = _field(obj, "height", amount)
    data = _governance("proposeUpgrade", name, version, height)
    return _send(node, obj, GOVERNANCE, data, _deposit(node, obj))


@methods.method("cmt_proposeText")
def propose_text(node: Any, args: Any) -> str:
    obj = _object(args, ("title", "text", "deposit"), ("title",))
    _sender(obj)
    title = _field(obj, "title", text)
    body = _field(obj, "text", text) or ""
    data = _governance("proposeText", title, body)
    return _send(node, obj, GOVERNANCE, data, _deposit(node, obj))


@methods.method("cmt_vote")
def vote(node: Any, args: Any) -> str:
    obj = _object(args, ("proposalId", "answer"), ("proposalId", "answer"))
    _sender(obj)
    proposal_id = _field(obj, "proposalId", amount)
    choice = _field(obj, "answer", answer)
    return _send(node, obj, GOVERNANCE, _governance("vote", proposal_id, choice))


# --- queries ----------------------------------------------------------------------------------


def _height(node: Any, value: Any, name: str) -> int:
    """A block: a JSON number, a hex quantity or a tag (default latest); checked to exist."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ParamError(name, f"negative block number {value}")
        ref = p.BlockRef(number=value)
    else:
        ref = p.block_number_or_tag(value, name)
    number = lookup.state_height(node, ref)
    return lookup.head_number(node) if number is None else number


def _query(node: Any, height: Any, read: Callable[[Backend, Params], Any]) -> dict[str, Any]:
    number = _height(node, height, "height")
    with node.chain.state_at(number) as view:
        backend = ReadOnlyBackend(view)
        return {"height": number, "data": read(backend, read_params(backend))}


@methods.method("cmt_queryValidators")
def query_validators(node: Any, height: Any = None) -> dict[str, Any]:
    return _query(node, height, staking_queries.validators)


@methods.method("cmt_queryValidator")
def query_validator(node: Any, address: Any, height: Any = None) -> dict[str, Any]:
    owner = p.address(address, "address")
    return _query(node, height, lambda b, params: staking_queries.candidate(b, params, owner))


@methods.method("cmt_queryDelegator")
def query_delegator(node: Any, address: Any, height: Any = None) -> dict[str, Any]:
    delegator = p.address(address, "address")
    return _query(node, height, lambda b, params: staking_queries.delegator(b, params, delegator))


@methods.method("cmt_queryAwardInfos")
def query_award_infos(node: Any, height: Any = None) -> dict[str, Any]:
    return _query(node, height, lambda b, params: staking_queries.award_infos(b))


@methods.method("cmt_queryProposals")
def query_proposals(node: Any, height: Any = None) -> dict[str, Any]:
    return _query(node, height, gov_queries.proposals)


@methods.method("cmt_queryParams")
def query_params(node: Any, height: Any = None) -> dict[str, Any]:
    return _query(node, height, lambda b, params: gov_queries.params(b))


@methods.method("cmt_consensusState")
def consensus_state(node: Any) -> dict[str, Any]:
    """Where this node's consensus is: ``{height, round, step, committed, peers, node_id}``.

    On a node that builds its chain alone (devnet, single validator) ``round`` and ``step`` are
    null, ``height`` is the next block and ``peers`` 0.
    """
    if node.consensus is not None:
        return node.consensus.status()
    committed = node.chain.head.block_number
    return {
        "height": committed + 1,
        "round": None,
        "step": None,
        "committed": committed,
        "peers": 0,
        "node_id": None,
    }


__all__ = ["methods"]
