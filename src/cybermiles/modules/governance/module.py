"""``GovernanceModule``: the precompile at ``0x…1001`` (``contracts/interfaces/IGovernance.sol``).

Proposing needs stake (a candidate, or a delegator with shares) and a deposit of at least
``proposal_deposit`` as ``msg.value``; the whole value is the deposit, held in this module's
balance until the proposal is decided. Voting needs stake at the time of the vote; the last
vote of a voter counts. What a proposal asks for is checked when it is made, so a proposal
that can pass can be carried out (short of the pool's balance, or an upgrade height that has
gone by: those end ``Failed``).
"""

from __future__ import annotations

from typing import Any

from eth_utils import to_canonical_address

from cybermiles.chain.params import GOVERNABLE, Params, check_param
from cybermiles.modules.addresses import COMMUNITY_POOL, GOVERNANCE
from cybermiles.modules.framework.module import (
    CallContext,
    Module,
    ModuleError,
    method,
)
from cybermiles.modules.governance import stake, state
from cybermiles.modules.governance.queries import current_tally
from cybermiles.modules.governance.records import (
    Answer,
    ChangeParam,
    Detail,
    Proposal,
    Status,
    Text,
    TransferFund,
    Upgrade,
)
from cybermiles.modules.params import read_params

PROPOSE_GAS = 2_000_000
VOTE_GAS = 30_000
VIEW_GAS = 2_000

PROPOSED = "Proposed(uint256,address,uint8,uint256)"
VOTED = "Voted(uint256,address,uint8)"

# kind, proposer, status, startHeight, expireHeight, yes, no, abstain
PROPOSAL_OUTPUTS = ("uint8", "address", "uint8", *("uint256",) * 5)

_PARAM_NAMES = frozenset(Params.__dataclass_fields__)


class GovernanceModule(Module):
    address = GOVERNANCE
    name = "governance"

    @method(
        "proposeTransferFund(address,uint256,string)",
        gas=PROPOSE_GAS,
        returns=("uint256",),
        payable=True,
    )
    def propose_transfer_fund(self, ctx: CallContext, to: str, amount: int, reason: str) -> int:
        if amount == 0:
            raise ModuleError("governance.proposeTransferFund: amount must be positive")
        return _propose(ctx, TransferFund(to_canonical_address(to), amount, reason))

    @method(
        "proposeChangeParam(string,uint256,uint256)",
        gas=PROPOSE_GAS,
        returns=("uint256",),
        payable=True,
    )
    def propose_change_param(self, ctx: CallContext, name: str, value: int, height: int) -> int:
        where = "governance.proposeChangeParam"
        if name not in _PARAM_NAMES:
            raise ModuleError(f"{where}: unknown parameter {name!r}")
        if name not in GOVERNABLE:
            raise ModuleError(f"{where}: parameter {name!r} is not governable")
        try:
            check_param(name, value)
        except ValueError as exc:
            raise ModuleError(f"{where}: {exc}") from None
        return _propose(ctx, ChangeParam(name, value, height))

    @method(
        "proposeUpgrade(string,string,uint256)",
        gas=PROPOSE_GAS,
        returns=("uint256",),
        payable=True,
    )
    def propose_upgrade(self, ctx: CallContext, name: str, version: str, height: int) -> int:
        if not version:
            raise ModuleError("governance.proposeUpgrade: version is empty")
        if height <= ctx.number:
            raise ModuleError(
                f"governance.proposeUpgrade: height {height} is not after the current block "
                f"{ctx.number}"
            )
        return _propose(ctx, Upgrade(name, version, height))

    @method(
        "proposeText(string,string)",
        gas=PROPOSE_GAS,
        returns=("uint256",),
        payable=True,
    )
    def propose_text(self, ctx: CallContext, title: str, text: str) -> int:
        return _propose(ctx, Text(title, text))

    @method("vote(uint256,uint8)", gas=VOTE_GAS)
    def vote(self, ctx: CallContext, proposal_id: int, answer: int) -> None:
        proposal = _get(ctx, proposal_id, "vote")
        if answer not in Answer.__members__.values():
            raise ModuleError(
                f"governance.vote: answer {answer} is not 0 (yes), 1 (no) or 2 (abstain)"
            )
        if proposal.status is not Status.VOTING or ctx.number > proposal.expire_height:
            raise ModuleError(
                f"governance.vote: proposal {proposal_id} is closed "
                f"(status {proposal.status.name.lower()}, voting ended at block "
                f"{proposal.expire_height})"
            )
        if not stake.has_stake(ctx.backend, ctx.sender):
            raise ModuleError(
                "governance.vote: the voter has no stake (only candidates and delegators vote)"
            )
        state.put_vote(ctx.backend, proposal_id, ctx.sender, answer)
        ctx.emit(
            VOTED,
            indexed=[("uint256", proposal_id), ("address", ctx.sender)],
            data=[("uint8", answer)],
        )

    @method(
        "proposal(uint256)",
        gas=VIEW_GAS,
        returns=PROPOSAL_OUTPUTS,
        view=True,
    )
    def proposal(self, ctx: CallContext, proposal_id: int) -> tuple[Any, ...]:
        proposal = _get(ctx, proposal_id, "proposal")
        result = current_tally(ctx.backend, proposal, read_params(ctx.backend))
        return (
            int(proposal.kind),
            proposal.proposer,
            int(proposal.status),
            proposal.start_height,
            proposal.expire_height,
            result.yes,
            result.no,
            result.abstain,
        )

    @method("param(string)", gas=VIEW_GAS, returns=("uint256",), view=True)
    def param(self, ctx: CallContext, name: str) -> int:
        if name not in _PARAM_NAMES:
            raise ModuleError(f"governance.param: unknown parameter {name!r}")
        value: int = getattr(read_params(ctx.backend), name)
        return value

    @method("communityPool()", gas=VIEW_GAS, returns=("uint256",), view=True)
    def community_pool(self, ctx: CallContext) -> int:
        return ctx.backend.get_balance(COMMUNITY_POOL)


def _get(ctx: CallContext, proposal_id: int, where: str) -> Proposal:
    proposal = state.get_proposal(ctx.backend, proposal_id)
    if proposal is None:
        raise ModuleError(f"governance.{where}: unknown proposal {proposal_id}")
    return proposal


def _propose(ctx: CallContext, detail: Detail) -> int:
    """Record a proposal by ``ctx.sender`` with deposit ``ctx.value``; its id."""
    params = read_params(ctx.backend)
    if not stake.has_stake(ctx.backend, ctx.sender):
        raise ModuleError(
            "governance: the proposer has no stake (only candidates and delegators propose)"
        )
    if ctx.value < params.proposal_deposit:
        raise ModuleError(
            f"governance: deposit {ctx.value} is below proposal_deposit {params.proposal_deposit}"
        )
    proposal_id = state.allocate_id(ctx.backend)
    proposal = Proposal(
        id=proposal_id,
        proposer=ctx.sender,
        deposit=ctx.value,
        start_height=ctx.number,
        expire_height=ctx.number + params.proposal_expire_period,
        detail=detail,
    )
    state.put_proposal(ctx.backend, proposal)
    state.set_active_ids(ctx.backend, [*state.active_ids(ctx.backend), proposal_id])
    ctx.emit(
        PROPOSED,
        indexed=[("uint256", proposal_id), ("address", ctx.sender)],
        data=[("uint8", int(proposal.kind)), ("uint256", proposal.expire_height)],
    )
    return proposal_id
