"""JSON-ready views of governance for ``cmt_queryProposals`` and ``cmt_queryParams``.

Amounts and powers are decimal strings (they exceed JavaScript's safe integers), heights and
counts are numbers, addresses are EIP-55 checksummed. A proposal still voting shows the live
tally (the current stake); a decided one the tally that decided it.
"""

from __future__ import annotations

from typing import Any

from cybermiles.chain.params import Params
from cybermiles.crypto.address import to_checksum
from cybermiles.modules.framework.store import Backend
from cybermiles.modules.governance import stake, state
from cybermiles.modules.governance.records import (
    ChangeParam,
    Detail,
    Kind,
    Proposal,
    Status,
    Tally,
    Text,
    TransferFund,
    Upgrade,
)
from cybermiles.modules.governance.tally import PowerView, tally
from cybermiles.modules.params import read_params

KIND_NAMES = {
    Kind.TRANSFER: "transfer_fund",
    Kind.CHANGE_PARAM: "change_param",
    Kind.UPGRADE: "upgrade",
    Kind.TEXT: "text",
}
STATUS_NAMES = {
    Status.VOTING: "Voting",
    Status.PASSED: "Approved",
    Status.REJECTED: "Rejected",
    Status.EXPIRED: "Expired",
    Status.FAILED: "Failed",
}
# Parameters that are wei amounts: decimal strings in JSON.
AMOUNT_PARAMS = frozenset({"min_gas_price", "min_staking_amount", "proposal_deposit"})


def current_tally(
    backend: Backend, proposal: Proposal, params: Params, table: PowerView | None = None
) -> Tally:
    """The live tally while voting, else the deciding one."""
    if proposal.status is not Status.VOTING:
        return proposal.tally
    if table is None:
        table = stake.power_table(backend, params)
    return tally(table, state.get_votes(backend, proposal.id))


def proposals(backend: Backend, params: Params) -> list[dict[str, Any]]:
    """Every proposal, by id."""
    table: PowerView | None = None
    out = []
    for proposal_id in range(1, state.proposal_count(backend) + 1):
        proposal = state.get_proposal(backend, proposal_id)
        if proposal is None:
            continue
        if proposal.status is Status.VOTING and table is None:
            table = stake.power_table(backend, params)
        out.append(proposal_json(proposal, current_tally(backend, proposal, params, table)))
    return out


def proposal_json(proposal: Proposal, votes: Tally) -> dict[str, Any]:
    return {
        "id": proposal.id,
        "type": KIND_NAMES[proposal.kind],
        "proposer": to_checksum(proposal.proposer),
        "block_height": proposal.start_height,
        "expire_block_height": proposal.expire_height,
        "result": STATUS_NAMES[proposal.status],
        "deposit": str(proposal.deposit),
        "detail": detail_json(proposal.detail),
        "votes": {"yes": str(votes.yes), "no": str(votes.no), "abstain": str(votes.abstain)},
    }


def detail_json(detail: Detail) -> dict[str, Any]:
    match detail:
        case TransferFund(to, amount, reason):
            return {"to": to_checksum(to), "amount": str(amount), "reason": reason}
        case ChangeParam(name, value, height):
            shown = param_json(name, value)
            return {"name": name, "value": shown, "height": height}
        case Upgrade(name, version, height):
            return {"name": name, "version": version, "height": height}
        case Text(title, text):
            return {"title": title, "text": text}
    raise TypeError(f"not a proposal detail: {detail!r}")


def param_json(name: str, value: int) -> str | int:
    if name == "verifier":
        return to_checksum(value.to_bytes(20, "big"))
    if name in AMOUNT_PARAMS:
        return str(value)
    return value


def params(backend: Backend) -> dict[str, str | int]:
    """The parameters in force, by name."""
    return {name: param_json(name, value) for name, value in read_params(backend).to_json().items()}
