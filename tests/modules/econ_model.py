"""An independent reference model of staking, rewards, slashing and governance economics.

Written from ``docs/staking.md`` only (plain dicts, ints and loops); it shares nothing with
``cybermiles.modules.staking`` / ``governance`` except the reserved addresses, the parameter
limits and the byte encoding of the backup draw (``keccak256(beacon || uint256(i))``, the beacon
``keccak256(b"cybermiles/beacon" || parent_hash)``).

Where the spec is silent the model makes one documented choice (``# ASSUMPTION``):

* a new delegation takes its candidate's comp rate at the time it is created;
* ``self_stake`` is what the owner paid (declare, plus extra on raising ``maxAmount``);
  the owner can't withdraw below it;
* evidence is processed before the rewards of the same block (lifecycle order: evidence,
  downtime, rewards, matured unbonding; then governance; then the election), so a double signer
  earns nothing in the block its evidence arrives, and powers for the rewards are those after
  the evidence;
* the election runs when ``h % epoch_blocks == 0`` with ``epoch_blocks`` in force at the start
  of the block's end, and elects with the parameters after governance's changes of that block;
* the governance tally uses the powers after the block's rewards (governance runs after
  staking's end of block);
* a candidate that withdraws its candidacy is removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cybermiles.chain.params import GOVERNABLE, check_param
from cybermiles.crypto.keccak import keccak256
from cybermiles.modules.addresses import COMMUNITY_POOL, GOVERNANCE, STAKING

WAD = 10**18
BP = 10_000
ZERO_HASH = b"\x00" * 32

YES, NO, ABSTAIN = 0, 1, 2
VOTING, PASSED, REJECTED, EXPIRED, FAILED = 0, 1, 2, 3, 4


class Refused(Exception):
    """The model expects the call to revert."""


@dataclass
class Cand:
    owner: bytes
    pub_key: bytes
    max_amount: int
    comp_rate: int
    self_stake: int
    shares: int = 0
    active: bool = True
    verified: bool = False
    jailed_until: int = 0


@dataclass
class Deleg:
    delegate: int = 0
    award: int = 0
    withdraw: int = 0
    slash: int = 0
    comp_rate: int = 0

    @property
    def shares(self) -> int:
        return self.delegate + self.award - self.withdraw - self.slash


@dataclass
class Prop:
    id: int
    proposer: bytes
    deposit: int
    name: str
    value: int
    height: int
    start: int
    expire: int
    status: int = VOTING
    votes: dict[bytes, int] = field(default_factory=dict)
    tally: tuple[int, int, int] = (0, 0, 0)


def beacon_for(parent_hash: bytes) -> bytes:
    return keccak256(b"cybermiles/beacon" + parent_hash)


class EconModel:
    def __init__(
        self,
        params: dict[str, int],
        alloc: dict[bytes, int],
        validators: list[tuple[bytes, bytes, int, int, list[tuple[bytes, int]]]],
    ) -> None:
        """``validators``: ``(owner, pub_key, max_amount, comp_rate, [(delegator, amount)])``."""
        self.p = dict(params)
        self.bal: dict[bytes, int] = dict(alloc)
        for a in (STAKING, GOVERNANCE, COMMUNITY_POOL):
            self.bal.setdefault(a, 0)
        self.supply = sum(alloc.values())
        self.cands: dict[bytes, Cand] = {}
        self.dels: dict[tuple[bytes, bytes], Deleg] = {}  # (candidate, delegator)
        self.unbonding: list[list] = []  # [mature_height, delegator, candidate, amount]
        self.validators: list[bytes] = []
        self.backups: list[bytes] = []
        self.props: dict[int, Prop] = {}
        self.scheduled: list[tuple[int, int, str, int]] = []  # (height, id, name, value)
        self.mints = 0
        for owner, pub_key, max_amount, comp_rate, delegations in validators:
            stake = max_amount * self.p["self_staking_ratio"] // BP
            self.cands[owner] = Cand(owner, pub_key, max_amount, comp_rate, stake)
            self._add_stake(owner, owner, stake)
            self.supply += stake
            self.bal[STAKING] += stake
            for delegator, amount in delegations:
                self._add_stake(owner, delegator, amount)
                self.supply += amount
                self.bal[STAKING] += amount
        self.elect(0, beacon_for(ZERO_HASH))

    # ------------------------------------------------------------------ helpers

    def _move(self, frm: bytes, to: bytes, amount: int) -> None:
        assert self.bal[frm] >= amount, (frm.hex(), amount)
        self.bal[frm] -= amount
        self.bal[to] = self.bal.get(to, 0) + amount

    def _add_stake(self, cand: bytes, delegator: bytes, amount: int) -> None:
        d = self.dels.get((cand, delegator))
        if d is None:
            d = self.dels[(cand, delegator)] = Deleg(comp_rate=self.cands[cand].comp_rate)
        d.delegate += amount
        self.cands[cand].shares += amount

    def _leave_sets(self, owner: bytes) -> None:
        self.validators = [v for v in self.validators if v != owner]
        self.backups = [b for b in self.backups if b != owner]

    def _unbond(self, h: int, cand: bytes, delegator: bytes, amount: int) -> None:
        d = self.dels[(cand, delegator)]
        d.withdraw += amount
        self.cands[cand].shares -= amount
        self.unbonding.append([h + self.p["unstake_waiting_period"], delegator, cand, amount])
        if d.shares == 0:
            del self.dels[(cand, delegator)]

    def delegations_of(self, cand: bytes) -> list[tuple[bytes, Deleg]]:
        return sorted((dl, d) for (c, dl), d in self.dels.items() if c == cand)

    def shares_of(self, delegator: bytes) -> int:
        return sum(d.shares for (_, dl), d in self.dels.items() if dl == delegator)

    def pending(self, delegator: bytes | None = None) -> int:
        return sum(u[3] for u in self.unbonding if delegator is None or u[1] == delegator)

    # ------------------------------------------------------------------ power

    def powers(self, h: int) -> tuple[dict[bytes, int], dict[tuple[bytes, bytes], int]]:
        """(candidate power, delegation power) of active, unjailed candidates."""
        live = [c for c in self.cands.values() if c.active and not c.jailed_until > h]
        total = sum(c.shares for c in live)
        thr, floor = self.p["validator_size_threshold"], self.p["min_staking_amount"]
        cpow: dict[bytes, int] = {}
        dpow: dict[tuple[bytes, bytes], int] = {}
        for c in live:
            cpow[c.owner] = 0
            for dl, d in self.delegations_of(c.owner):
                s = d.shares
                if s < floor:
                    vp = 0
                elif c.shares * BP > thr * total:
                    vp = s * thr * total // (BP * c.shares)
                else:
                    vp = s
                dpow[(c.owner, dl)] = vp
                cpow[c.owner] += vp
        return cpow, dpow

    def elect(self, h: int, beacon: bytes) -> None:
        cpow, _ = self.powers(h)
        ranked = sorted((a for a, pw in cpow.items() if pw > 0), key=lambda a: (-cpow[a], a))
        self.validators = ranked[: self.p["max_vals"]]
        rest = {a: cpow[a] for a in ranked[self.p["max_vals"] :]}
        self.backups = []
        for i in range(self.p["backup_vals"]):
            total = sum(rest.values())
            if total == 0:
                break
            r = int.from_bytes(keccak256(beacon + i.to_bytes(32, "big")), "big") % total
            acc = 0
            for a in sorted(rest):
                acc += rest[a]
                if r < acc:
                    self.backups.append(a)
                    del rest[a]
                    break

    # ------------------------------------------------------------------ staking calls

    def declare(
        self, h: int, owner: bytes, value: int, pub_key: bytes, max_amount: int, comp_rate: int
    ) -> None:
        if owner in self.cands:
            raise Refused("already a candidate")
        if any(c.pub_key == pub_key for c in self.cands.values()):
            raise Refused("pub key in use")
        if not 0 <= comp_rate <= WAD:
            raise Refused("comp rate")
        if value != max_amount * self.p["self_staking_ratio"] // BP:
            raise Refused("self-stake")
        self.cands[owner] = Cand(owner, pub_key, max_amount, comp_rate, value)
        self._add_stake(owner, owner, value)
        self.bal[STAKING] += value

    def raise_max(self, h: int, owner: bytes, value: int, max_amount: int) -> None:
        """updateCandidacy with the same key, comp rate and description, a higher maxAmount."""
        c = self.cands.get(owner)
        if c is None:
            raise Refused("not a candidate")
        extra = max_amount * self.p["self_staking_ratio"] // BP - c.self_stake
        if max_amount < c.shares or value != max(extra, 0):
            raise Refused("max amount / extra self-stake")
        c.max_amount = max_amount
        if value:
            c.self_stake += value
            self._add_stake(owner, owner, value)
            self.bal[STAKING] += value

    def delegate(self, h: int, delegator: bytes, value: int, cand: bytes) -> None:
        c = self.cands.get(cand)
        if c is None or not c.active or c.jailed_until > h:
            raise Refused("not an active candidate")
        if value <= 0 or c.shares + value > c.max_amount:
            raise Refused("amount")
        self._add_stake(cand, delegator, value)
        self.bal[STAKING] += value

    def withdraw(self, h: int, delegator: bytes, cand: bytes, amount: int) -> None:
        d = self.dels.get((cand, delegator))
        if d is None or not 0 < amount <= d.shares:
            raise Refused("amount")
        owner = self.cands.get(cand) if delegator == cand else None
        if owner is not None and d.shares - amount < owner.self_stake:
            raise Refused("below self-stake")
        self._unbond(h, cand, delegator, amount)

    def withdraw_candidacy(self, h: int, owner: bytes) -> None:
        if owner not in self.cands:
            raise Refused("not a candidate")
        for dl, d in self.delegations_of(owner):
            self._unbond(h, owner, dl, d.shares)
        del self.cands[owner]
        self._leave_sets(owner)

    def activate(self, h: int, owner: bytes) -> None:
        c = self.cands.get(owner)
        if c is None or c.jailed_until > h:
            raise Refused("not a candidate / jailed")
        c.active = True

    def deactivate(self, h: int, owner: bytes) -> None:
        c = self.cands.get(owner)
        if c is None:
            raise Refused("not a candidate")
        c.active = False
        self._leave_sets(owner)

    def set_comp_rate(self, h: int, owner: bytes, delegator: bytes, rate: int) -> None:
        c = self.cands.get(owner)
        d = self.dels.get((owner, delegator))
        if c is None or d is None or not 0 <= rate <= c.comp_rate:
            raise Refused("comp rate")
        d.comp_rate = rate

    # ------------------------------------------------------------------ governance calls

    def propose_change_param(
        self, h: int, proposer: bytes, value: int, pid: int, name: str, new: int, height: int
    ) -> None:
        if self.shares_of(proposer) == 0 and proposer not in self.cands:
            raise Refused("no stake")
        if value < self.p["proposal_deposit"]:
            raise Refused("deposit")
        if name not in GOVERNABLE:
            raise Refused("not governable")
        try:
            check_param(name, new)
        except ValueError:
            raise Refused("out of range") from None
        self.bal[GOVERNANCE] += value
        expire = h + self.p["proposal_expire_period"]
        self.props[pid] = Prop(pid, proposer, value, name, new, height, h, expire)

    def vote(self, h: int, voter: bytes, pid: int, answer: int) -> None:
        p = self.props.get(pid)
        if p is None or p.status != VOTING or answer not in (YES, NO, ABSTAIN):
            raise Refused("not voting")
        p.votes[voter] = answer

    def tally(self, h: int, p: Prop) -> tuple[tuple[int, int, int], int]:
        _, dpow = self.powers(h)
        counts = [0, 0, 0]
        for (cand, dl), vp in sorted(dpow.items()):
            if dl in p.votes:
                counts[p.votes[dl]] += vp
            elif cand in p.votes:
                counts[p.votes[cand]] += vp
        return (counts[0], counts[1], counts[2]), sum(dpow.values())

    # ------------------------------------------------------------------ end of block

    def end_block(
        self, h: int, fees: int, parent_hash: bytes, evidence: tuple[bytes, ...] = ()
    ) -> None:
        epoch_blocks = self.p["epoch_blocks"]
        # 1. staking: evidence (double sign)
        for owner in evidence:
            c = self.cands.get(owner)
            if c is None or c.jailed_until > h:  # still jailed: the same incident
                continue
            for _, d in self.delegations_of(owner):
                cut = d.shares * self.p["slash_ratio"] // BP
                d.slash += cut
                c.shares -= cut
                self._move(STAKING, COMMUNITY_POOL, cut)
            c.active = False
            c.jailed_until = h + self.p["jail_period"]
            self._leave_sets(owner)
        # 1b. rewards
        self.reward(h, fees)
        # 1c. matured unbonding
        keep = []
        for u in self.unbonding:
            if u[0] <= h:
                self._move(STAKING, u[1], u[3])
            else:
                keep.append(u)
        self.unbonding = keep
        # 2. governance
        self.govern(h)
        # 3. election
        if h % epoch_blocks == 0:
            self.elect(h, beacon_for(parent_hash))

    def reward(self, h: int, fees: int) -> None:
        cpow, dpow = self.powers(h)
        p_v = sum(cpow.get(v, 0) for v in self.validators)
        p_b = sum(cpow.get(b, 0) for b in self.backups)
        mint = 0
        if p_v > 0:
            mint = self.supply * self.p["inflation_rate"] // (BP * self.p["blocks_per_year"])
            self.supply += mint
            self.mints += mint
            self.bal[STAKING] += mint
        award = mint + fees
        if p_v == 0 and p_b == 0:
            self._move(STAKING, COMMUNITY_POOL, award)
            return
        community = award * self.p["community_pool_ratio"] // BP
        self._move(STAKING, COMMUNITY_POOL, community)
        rest = award - community
        if p_b == 0:
            s_v, s_b = rest, 0
        else:
            s_v = rest * self.p["validators_block_award_ratio"] // BP
            s_b = rest - s_v
        for group, share, power in ((self.validators, s_v, p_v), (self.backups, s_b, p_b)):
            paid = 0
            if power > 0:
                for cand in sorted(group):
                    for dl, _ in self.delegations_of(cand):
                        vp = dpow.get((cand, dl), 0)
                        if vp == 0:
                            continue
                        r = share * vp // power
                        d = self.dels[(cand, dl)]
                        owner_part = r * d.comp_rate // WAD
                        d.award += r - owner_part
                        self.dels[(cand, cand)].award += owner_part
                        self.cands[cand].shares += r
                        paid += r
            self._move(STAKING, COMMUNITY_POOL, share - paid)

    def govern(self, h: int) -> None:
        for pid in sorted(self.props):
            p = self.props[pid]
            if p.status != VOTING:
                continue
            (yes, no, abstain), total = self.tally(h, p)
            p.tally = (yes, no, abstain)
            if yes * 3 >= total * 2:
                status = PASSED
            elif h >= p.expire:
                if (yes + no + abstain) * 3 >= total:
                    status = PASSED if yes > 0 and yes * 3 >= (yes + no) * 2 else REJECTED
                else:
                    status = EXPIRED
            else:
                continue
            p.status = status
            if status == EXPIRED:
                self._move(GOVERNANCE, COMMUNITY_POOL, p.deposit)
            else:
                self._move(GOVERNANCE, p.proposer, p.deposit)
            if status == PASSED:
                self.scheduled.append((max(p.height, h), pid, p.name, p.value))
        due = sorted(s for s in self.scheduled if s[0] <= h)
        self.scheduled = [s for s in self.scheduled if s[0] > h]
        for _, _, name, value in due:
            self.p[name] = value
