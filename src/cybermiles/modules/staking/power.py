"""Voting power and the election (docs/staking.md, "Voting power and election").

Only active candidates have power (jailing always deactivates, and activation is refused while
jailed, so an active candidate is never jailed). With ``T`` the shares of all active candidates
and ``C`` a candidate's shares, a delegation with shares ``s``:

* has power 0 if ``s < min_staking_amount``;
* else has ``s * validator_size_threshold * T // (10000 * C)`` if
  ``C * 10000 > validator_size_threshold * T`` (the 12% cap), else ``s``.

A candidate's power is the sum of its delegations' power.

Election: the top ``max_vals`` candidates by power (ties: lower address first) validate;
``backup_vals`` backups are drawn without replacement from the rest with power > 0, draw ``i``
taking ``r = keccak256(beacon || uint256(i)) mod P`` (``P`` the remaining power, candidates in
address order with cumulative ranges) and picking the candidate whose range holds ``r``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cybermiles.chain.params import BASIS_POINTS, Params
from cybermiles.crypto.keccak import keccak256
from cybermiles.modules.framework.store import Backend
from cybermiles.modules.staking.state import StakingState


@dataclass(frozen=True, slots=True)
class PowerTable:
    """Voting power at one moment.

    ``candidates``: candidate -> power, only active candidates with power > 0.
    ``delegations``: candidate -> delegator -> power, only delegations with power > 0 (of the
    candidates in ``candidates``). ``total``: the sum of ``candidates``.
    """

    candidates: dict[bytes, int]
    delegations: dict[bytes, dict[bytes, int]]
    total: int


def delegation_power(shares: int, candidate_shares: int, total_shares: int, params: Params) -> int:
    """The voting power of a delegation with ``shares`` (see the module docstring)."""
    if shares < params.min_staking_amount or shares == 0:
        return 0
    threshold = params.validator_size_threshold
    if candidate_shares * BASIS_POINTS > threshold * total_shares:
        return shares * threshold * total_shares // (BASIS_POINTS * candidate_shares)
    return shares


def power_table(backend: Backend, params: Params) -> PowerTable:
    """The voting power of every active candidate and of its delegations, now."""
    state = StakingState(backend)
    active = [c for c in state.candidates() if c.active]
    total_shares = sum(c.shares for c in active)
    candidates: dict[bytes, int] = {}
    delegations: dict[bytes, dict[bytes, int]] = {}
    for candidate in active:
        powers: dict[bytes, int] = {}
        for delegator in state.delegators(candidate.owner):
            delegation = state.get_delegation(candidate.owner, delegator)
            if delegation is None:
                continue
            vp = delegation_power(delegation.shares, candidate.shares, total_shares, params)
            if vp > 0:
                powers[delegator] = vp
        power = sum(powers.values())
        if power > 0:
            candidates[candidate.owner] = power
            delegations[candidate.owner] = powers
    return PowerTable(candidates, delegations, sum(candidates.values()))


def top_validators(powers: dict[bytes, int], max_vals: int) -> list[bytes]:
    """The ``max_vals`` strongest candidates with power > 0, by power, ties lower address."""
    ranked = sorted((a for a, p in powers.items() if p > 0), key=lambda a: (-powers[a], a))
    return ranked[:max_vals]


def draw_point(beacon: bytes, draw: int, total: int) -> int:
    """``keccak256(beacon || uint256(draw)) mod total``."""
    digest = keccak256(beacon + draw.to_bytes(32, "big"))
    return int.from_bytes(digest, "big") % total


def draw_backups(powers: dict[bytes, int], count: int, beacon: bytes) -> list[bytes]:
    """``count`` draws without replacement, weighted by power, in draw order."""
    remaining = {a: p for a, p in powers.items() if p > 0}
    drawn: list[bytes] = []
    for i in range(count):
        total = sum(remaining.values())
        if total == 0:
            break
        point = draw_point(beacon, i, total)
        cumulative = 0
        for candidate in sorted(remaining):
            cumulative += remaining[candidate]
            if point < cumulative:
                drawn.append(candidate)
                del remaining[candidate]
                break
    return drawn


def elect_sets(
    powers: dict[bytes, int], max_vals: int, backup_vals: int, beacon: bytes
) -> tuple[list[bytes], list[bytes]]:
    """``(validators, backups)`` for candidate powers ``powers`` (see the module docstring)."""
    validators = top_validators(powers, max_vals)
    chosen = set(validators)
    rest = {a: p for a, p in powers.items() if a not in chosen}
    return validators, draw_backups(rest, backup_vals, beacon)
