"""JSON-ready views of the staking state for the ``cmt_query*`` RPC methods.

Amounts are decimal strings, addresses EIP-55 checksummed ``0x`` text, comp rates decimal
fractions (``"0.2"``), heights and counts integers. Field names follow CyberMiles Travis.
A candidate's ``rank`` is its 1-based place among all candidates by voting power (ties: lower
address first); ``state`` is ``"Validator"``, ``"Backup Validator"`` or ``"Candidate"``.
"""

from __future__ import annotations

from typing import Any

from cybermiles.chain.params import WAD, Params
from cybermiles.crypto.address import to_checksum
from cybermiles.modules.framework.store import Backend
from cybermiles.modules.staking.power import PowerTable, power_table
from cybermiles.modules.staking.records import DESCRIPTION_FIELDS, Candidate
from cybermiles.modules.staking.state import StakingState

VALIDATOR = "Validator"
BACKUP = "Backup Validator"
CANDIDATE = "Candidate"


def format_rate(rate: int) -> str:
    """An 18-decimal fixed-point rate as a decimal fraction: ``2 * 10**17`` -> ``"0.2"``."""
    whole, frac = divmod(rate, WAD)
    if frac == 0:
        return str(whole)
    return f"{whole}.{str(frac).rjust(18, '0').rstrip('0')}"


def _flag(value: bool) -> str:
    return "Y" if value else "N"


def _ranks(state: StakingState, table: PowerTable) -> dict[bytes, int]:
    owners = state.candidate_addresses()
    ordered = sorted(owners, key=lambda a: (-table.candidates.get(a, 0), a))
    return {owner: i + 1 for i, owner in enumerate(ordered)}


def _candidate_json(
    state: StakingState, candidate: Candidate, table: PowerTable, rank: int
) -> dict[str, Any]:
    if candidate.owner in state.validators():
        role = VALIDATOR
    elif candidate.owner in state.backups():
        role = BACKUP
    else:
        role = CANDIDATE
    return {
        "owner_address": to_checksum(candidate.owner),
        "pub_key": "0x" + candidate.pub_key.hex(),
        "shares": str(candidate.shares),
        "voting_power": str(table.candidates.get(candidate.owner, 0)),
        "max_shares": str(candidate.max_amount),
        "comp_rate": format_rate(candidate.comp_rate),
        "created_at": candidate.created_at,
        "description": dict(zip(DESCRIPTION_FIELDS, candidate.description, strict=True)),
        "verified": _flag(candidate.verified),
        "active": _flag(candidate.active),
        "jailed_until": candidate.jailed_until,
        "rank": rank,
        "state": role,
        "num_of_delegators": len(state.delegators(candidate.owner)),
        "self_stake": str(candidate.self_stake),
    }


def validators(backend: Backend, params: Params) -> list[dict[str, Any]]:
    """Every candidate, in address order."""
    state = StakingState(backend)
    table = power_table(backend, params)
    ranks = _ranks(state, table)
    return [_candidate_json(state, c, table, ranks[c.owner]) for c in state.candidates()]


def candidate(backend: Backend, params: Params, address: bytes) -> dict[str, Any] | None:
    """One candidate, or None."""
    state = StakingState(backend)
    record = state.get_candidate(address)
    if record is None:
        return None
    table = power_table(backend, params)
    return _candidate_json(state, record, table, _ranks(state, table)[address])


def delegator(backend: Backend, params: Params, address: bytes) -> list[dict[str, Any]]:
    """The delegations of ``address``, in candidate address order."""
    state = StakingState(backend)
    table = power_table(backend, params)
    out = []
    for owner in state.delegated_candidates(address):
        record = state.get_delegation(owner, address)
        if record is None:
            continue
        out.append(
            {
                "delegator_address": to_checksum(address),
                "validator_address": to_checksum(owner),
                "delegate_amount": str(record.delegate_amount),
                "award_amount": str(record.award_amount),
                "withdraw_amount": str(record.withdraw_amount),
                "pending_withdraw_amount": str(state.pending(owner, address)),
                "slash_amount": str(record.slash_amount),
                "comp_rate": format_rate(record.comp_rate),
                "voting_power": str(table.delegations.get(owner, {}).get(address, 0)),
                "created_at": record.created_at,
                "shares": str(record.shares),
            }
        )
    return out


def award_infos(backend: Backend) -> list[dict[str, Any]]:
    """What each validator and backup earned in the last block."""
    return [
        {
            "address": to_checksum(owner),
            "state": BACKUP if is_backup else VALIDATOR,
            "amount": str(amount),
        }
        for owner, is_backup, amount in StakingState(backend).awards()
    ]


def total_supply(backend: Backend) -> int:
    """Genesis allocations + genesis stake + every block's mint."""
    return StakingState(backend).total_supply()
