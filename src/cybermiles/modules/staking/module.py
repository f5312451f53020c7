"""``StakingModule``: the IStaking precompile at ``0x…1000``.

Interface: ``contracts/interfaces/IStaking.sol``.

Every handler checks all its rules first (each failure reverts with a reason starting
``staking:``) and only then writes. Value sent with a call is already in the module's balance.

Gas (fixed, on top of the transaction's intrinsic gas):

==========================================  =========
``declareCandidacy``, ``updateCandidacy``   1,000,000
``setCompRate``                             21,000
other state-changing functions              30,000
views                                       2,000
==========================================  =========

Descriptions are bounded (name 70 bytes, website, location and email 140, profile 280, as in
CyberMiles Travis) since their storage is paid by a fixed gas charge.
"""

from __future__ import annotations

from typing import ClassVar

from cybermiles.chain.params import BASIS_POINTS, WAD, Params
from cybermiles.crypto.address import to_checksum
from cybermiles.modules.addresses import STAKING
from cybermiles.modules.framework.module import CallContext, Module, ModuleError, method
from cybermiles.modules.params import read_params
from cybermiles.modules.staking import beacon_commitments
from cybermiles.modules.staking.bonding import bond, start_unbonding
from cybermiles.modules.staking.power import power_table
from cybermiles.modules.staking.records import DESCRIPTION_FIELDS, Candidate
from cybermiles.modules.staking.slashing import deactivate
from cybermiles.modules.staking.state import StakingState

DESCRIPTION = "(string,string,string,string,string)"
DESCRIPTION_LIMITS = (70, 140, 140, 140, 280)  # bytes, in DESCRIPTION_FIELDS order
DECLARE_GAS = 1_000_000
SET_COMP_RATE_GAS = 21_000
CALL_GAS = 30_000
VIEW_GAS = 2_000

Description = tuple[str, str, str, str, str]


def _address(value: str | bytes) -> bytes:
    """eth-abi decodes addresses as checksummed text; the state uses 20 raw bytes."""
    if isinstance(value, bytes):
        return value
    return bytes.fromhex(value[2:])


def _hex(address: bytes) -> str:
    return to_checksum(address)


def self_stake_for(max_amount: int, params: Params) -> int:
    """The self-stake a max amount requires: ``max_amount * self_staking_ratio // 10000``."""
    return max_amount * params.self_staking_ratio // BASIS_POINTS


def check_description(description: Description) -> None:
    for field, text, limit in zip(DESCRIPTION_FIELDS, description, DESCRIPTION_LIMITS, strict=True):
        if len(text.encode()) > limit:
            raise ModuleError(f"staking: description {field} longer than {limit} bytes")


def check_comp_rate(comp_rate: int) -> None:
    if comp_rate > WAD:
        raise ModuleError(f"staking: compRate {comp_rate} above 1e18 (100%)")


def check_pub_key(state: StakingState, pub_key: bytes, owner: bytes) -> None:
    if pub_key == bytes(32):
        raise ModuleError("staking: pubKey must not be zero")
    user = state.owner_of_pub_key(pub_key)
    if user is not None and user != owner:
        raise ModuleError(f"staking: pubKey already used by candidate {_hex(user)}")


def require_candidate(state: StakingState, owner: bytes) -> Candidate:
    candidate = state.get_candidate(owner)
    if candidate is None:
        raise ModuleError(f"staking: {_hex(owner)} is not a candidate")
    return candidate


class StakingModule(Module):
    address: ClassVar[bytes] = STAKING
    name: ClassVar[str] = "staking"

    # -- candidacy
    @method(
        f"declareCandidacy(bytes32,uint256,uint256,{DESCRIPTION})", gas=DECLARE_GAS, payable=True
    )
    def declare_candidacy(
        self,
        ctx: CallContext,
        pub_key: bytes,
        max_amount: int,
        comp_rate: int,
        description: Description,
    ) -> None:
        params = read_params(ctx.backend)
        state = StakingState(ctx.backend)
        if state.get_candidate(ctx.sender) is not None:
            raise ModuleError(f"staking: {_hex(ctx.sender)} is already a candidate")
        check_pub_key(state, pub_key, ctx.sender)
        check_comp_rate(comp_rate)
        check_description(description)
        if max_amount == 0:
            raise ModuleError("staking: maxAmount must be positive")
        self_stake = self_stake_for(max_amount, params)
        if ctx.value != self_stake:
            raise ModuleError(
                f"staking: msg.value must be the self-stake {self_stake} wei, got {ctx.value}"
            )
        candidate = Candidate(
            ctx.sender,
            pub_key,
            max_amount,
            comp_rate,
            0,
            self_stake,
            *description,
            False,
            True,
            0,
            ctx.number,
            0,
        )
        if self_stake:
            candidate = bond(state, candidate, ctx.sender, self_stake, ctx.number)
        state.put_candidate(candidate)
        ctx.emit(
            "CandidacyDeclared(address,bytes32,uint256,uint256)",
            [("address", ctx.sender)],
            [("bytes32", pub_key), ("uint256", max_amount), ("uint256", comp_rate)],
        )

    @method(
        f"updateCandidacy(bytes32,uint256,uint256,{DESCRIPTION})", gas=DECLARE_GAS, payable=True
    )
    def update_candidacy(
        self,
        ctx: CallContext,
        pub_key: bytes,
        max_amount: int,
        comp_rate: int,
        description: Description,
    ) -> None:
        params = read_params(ctx.backend)
        state = StakingState(ctx.backend)
        candidate = require_candidate(state, ctx.sender)
        check_pub_key(state, pub_key, ctx.sender)
        check_comp_rate(comp_rate)
        check_description(description)
        extra = 0
        if max_amount > candidate.max_amount:
            extra = max(0, self_stake_for(max_amount, params) - candidate.self_stake)
        if ctx.value != extra:
            raise ModuleError(
                f"staking: msg.value must be the extra self-stake {extra} wei, got {ctx.value}"
            )
        if max_amount < candidate.shares + extra:
            raise ModuleError(
                f"staking: maxAmount {max_amount} below the candidate's shares "
                f"{candidate.shares + extra}"
            )
        if comp_rate < candidate.comp_rate:
            self._cap_comp_rates(state, candidate.owner, comp_rate)
        if extra:
            candidate = bond(state, candidate, ctx.sender, extra, ctx.number)
        verified = candidate.verified and tuple(description) == candidate.description
        candidate = candidate.copy(
            pub_key=pub_key,
            max_amount=max_amount,
            comp_rate=comp_rate,
            self_stake=candidate.self_stake + extra,
            verified=verified,
            **dict(zip(DESCRIPTION_FIELDS, description, strict=True)),
        )
        state.put_candidate(candidate)
        ctx.emit(
            "CandidacyUpdated(address,bytes32,uint256,uint256)",
            [("address", ctx.sender)],
            [("bytes32", pub_key), ("uint256", max_amount), ("uint256", comp_rate)],
        )

    @staticmethod
    def _cap_comp_rates(state: StakingState, owner: bytes, comp_rate: int) -> None:
        """Lowering a candidate's rate lowers every delegation's rate above it to it."""
        for delegator in state.delegators(owner):
            delegation = state.get_delegation(owner, delegator)
            if delegation is not None and delegation.comp_rate > comp_rate:
                state.put_delegation(owner, delegator, delegation.copy(comp_rate=comp_rate))

    @method("withdrawCandidacy()", gas=CALL_GAS)
    def withdraw_candidacy(self, ctx: CallContext) -> None:
        params = read_params(ctx.backend)
        state = StakingState(ctx.backend)
        candidate = require_candidate(state, ctx.sender)
        mature = ctx.number + params.unstake_waiting_period
        for delegator in state.delegators(candidate.owner):
            delegation = state.get_delegation(candidate.owner, delegator)
            if delegation is None:
                continue
            amount = delegation.shares
            candidate = start_unbonding(state, candidate, delegator, amount, mature)
            ctx.emit(
                "Withdrawn(address,address,uint256,uint256)",
                [("address", delegator), ("address", candidate.owner)],
                [("uint256", amount), ("uint256", mature)],
            )
        state.delete_candidate(candidate.owner)
        ctx.emit("CandidacyWithdrawn(address)", [("address", ctx.sender)])

    @method("activateCandidacy()", gas=CALL_GAS)
    def activate_candidacy(self, ctx: CallContext) -> None:
        state = StakingState(ctx.backend)
        candidate = require_candidate(state, ctx.sender)
        if candidate.active:
            raise ModuleError("staking: candidacy is already active")
        if candidate.jailed_until > ctx.number:
            raise ModuleError(f"staking: candidate is jailed until block {candidate.jailed_until}")
        state.put_candidate(candidate.copy(active=True, missed_blocks=0))
        ctx.emit("CandidacyActivated(address,bool)", [("address", ctx.sender)], [("bool", True)])

    @method("deactivateCandidacy()", gas=CALL_GAS)
    def deactivate_candidacy(self, ctx: CallContext) -> None:
        state = StakingState(ctx.backend)
        candidate = require_candidate(state, ctx.sender)
        if not candidate.active:
            raise ModuleError("staking: candidacy is already inactive")
        state.put_candidate(deactivate(state, candidate))
        ctx.emit("CandidacyActivated(address,bool)", [("address", ctx.sender)], [("bool", False)])

    @method("verifyCandidacy(address,bool)", gas=CALL_GAS)
    def verify_candidacy(self, ctx: CallContext, candidate: str, verified: bool) -> None:
        params = read_params(ctx.backend)
        state = StakingState(ctx.backend)
        if ctx.sender != params.verifier.to_bytes(20, "big"):
            raise ModuleError("staking: only the verifier may verify candidates")
        record = require_candidate(state, _address(candidate))
        state.put_candidate(record.copy(verified=verified))
        ctx.emit(
            "CandidacyVerified(address,bool)", [("address", record.owner)], [("bool", verified)]
        )

    # -- delegations
    @method("delegate(address)", gas=CALL_GAS, payable=True)
    def delegate(self, ctx: CallContext, candidate: str) -> None:
        state = StakingState(ctx.backend)
        record = require_candidate(state, _address(candidate))
        if ctx.value == 0:
            raise ModuleError("staking: delegate needs a positive msg.value")
        if not record.active:
            raise ModuleError(f"staking: candidate {_hex(record.owner)} is not active")
        if record.shares + ctx.value > record.max_amount:
            raise ModuleError(
                f"staking: delegation would raise the candidate's shares above maxAmount "
                f"{record.max_amount}"
            )
        state.put_candidate(bond(state, record, ctx.sender, ctx.value, ctx.number))
        ctx.emit(
            "Delegated(address,address,uint256)",
            [("address", ctx.sender), ("address", record.owner)],
            [("uint256", ctx.value)],
        )

    @method("withdraw(address,uint256)", gas=CALL_GAS)
    def withdraw(self, ctx: CallContext, candidate: str, amount: int) -> None:
        params = read_params(ctx.backend)
        state = StakingState(ctx.backend)
        record = require_candidate(state, _address(candidate))
        if amount == 0:
            raise ModuleError("staking: withdraw amount must be positive")
        delegation = state.get_delegation(record.owner, ctx.sender)
        if delegation is None:
            raise ModuleError(f"staking: no delegation on {_hex(record.owner)}")
        if amount > delegation.shares:
            raise ModuleError(
                f"staking: amount {amount} above the delegation's shares {delegation.shares}"
            )
        if ctx.sender == record.owner and delegation.shares - amount < record.self_stake:
            raise ModuleError(
                f"staking: the owner can't go below its self-stake {record.self_stake}"
            )
        mature = ctx.number + params.unstake_waiting_period
        state.put_candidate(start_unbonding(state, record, ctx.sender, amount, mature))
        ctx.emit(
            "Withdrawn(address,address,uint256,uint256)",
            [("address", ctx.sender), ("address", record.owner)],
            [("uint256", amount), ("uint256", mature)],
        )

    @method("setCompRate(address,uint256)", gas=SET_COMP_RATE_GAS)
    def set_comp_rate(self, ctx: CallContext, delegator: str, comp_rate: int) -> None:
        state = StakingState(ctx.backend)
        record = require_candidate(state, ctx.sender)
        who = _address(delegator)
        delegation = state.get_delegation(record.owner, who)
        if delegation is None:
            raise ModuleError(f"staking: {_hex(who)} has no delegation on {_hex(record.owner)}")
        if comp_rate > record.comp_rate:
            raise ModuleError(
                f"staking: compRate {comp_rate} above the candidate's own rate {record.comp_rate}"
            )
        state.put_delegation(record.owner, who, delegation.copy(comp_rate=comp_rate))
        ctx.emit(
            "CompRateSet(address,address,uint256)",
            [("address", record.owner), ("address", who)],
            [("uint256", comp_rate)],
        )

    # -- the random beacon
    @method("setBeaconCommitment(bytes32)", gas=CALL_GAS)
    def set_beacon_commitment(self, ctx: CallContext, commitment: bytes) -> None:
        """Register the tip of a hash onion, live from ``COMMIT_DELAY`` blocks on; all zero
        withdraws the commitment (``modules/staking/beacon_commitments.py``)."""
        state = StakingState(ctx.backend)
        require_candidate(state, ctx.sender)
        if commitment == bytes(32) and not beacon_commitments.has_commitment(
            state, ctx.sender, ctx.number
        ):
            raise ModuleError("staking: no beacon commitment to withdraw")
        beacon_commitments.commit(state, ctx.sender, commitment, ctx.number)
        ctx.emit(
            "BeaconCommitted(address,bytes32)",
            [("address", ctx.sender)],
            [("bytes32", commitment)],
        )

    # -- views
    @method(
        "candidate(address)",
        gas=VIEW_GAS,
        view=True,
        returns=("bytes32", "uint256", "uint256", "uint256", "uint256", "bool", "bool", "uint256"),
    )
    def candidate(self, ctx: CallContext, candidate: str) -> tuple[object, ...]:
        state = StakingState(ctx.backend)
        record = require_candidate(state, _address(candidate))
        table = power_table(ctx.backend, read_params(ctx.backend))
        return (
            record.pub_key,
            record.max_amount,
            record.comp_rate,
            record.shares,
            table.candidates.get(record.owner, 0),
            record.active,
            record.verified,
            record.jailed_until,
        )

    @method(
        "delegation(address,address)",
        gas=VIEW_GAS,
        view=True,
        returns=("uint256",) * 6,
    )
    def delegation(self, ctx: CallContext, candidate: str, delegator: str) -> tuple[int, ...]:
        """Zeros for an account without a delegation on ``candidate``."""
        state = StakingState(ctx.backend)
        owner, who = _address(candidate), _address(delegator)
        record = state.get_delegation(owner, who)
        if record is None:
            return (0,) * 6
        table = power_table(ctx.backend, read_params(ctx.backend))
        return (
            record.delegate_amount,
            record.award_amount,
            record.withdraw_amount,
            record.slash_amount,
            record.comp_rate,
            table.delegations.get(owner, {}).get(who, 0),
        )

    @method("validators()", gas=VIEW_GAS, view=True, returns=("address[]",))
    def validators(self, ctx: CallContext) -> list[bytes]:
        return StakingState(ctx.backend).validators()

    @method("backups()", gas=VIEW_GAS, view=True, returns=("address[]",))
    def backups(self, ctx: CallContext) -> list[bytes]:
        return StakingState(ctx.backend).backups()

    @method("totalStake()", gas=VIEW_GAS, view=True, returns=("uint256",))
    def total_stake(self, ctx: CallContext) -> int:
        return StakingState(ctx.backend).total_stake()
