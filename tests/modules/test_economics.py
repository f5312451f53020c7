"""Economics: a seeded random replay of staking and governance against ``econ_model``.

Over ``N_BLOCKS`` blocks of a real ``Blockchain`` a driver sends signed stake / delegate /
withdraw / candidacy / comp-rate / governance / transfer transactions, and double-sign
evidence, and applies each to ``EconModel`` (an independent model written from
``docs/staking.md``). After every block where something happened, at a sample of quiet blocks
and at the end, every tracked balance, the staking module's, governance's and the community
pool's balances, every candidate and delegation, the total supply, the validator and backup
sets, the parameters and the proposals must equal the model's to the wei.

Cost: the chain's end of block dominates (~7-8 ms of CPU per block with 5 candidates and ~12
delegations, about 1 ms more per rewarded delegation: pyrlp decoding of candidate and
delegation records); the model adds ~0.1 ms. The data directory is on /dev/shm when there is
one (LMDB's fsync per block is not under test). ``ECON_BLOCKS`` overrides the block count.

Known disagreement (kept out of the run, see ``Replay.live``): with no voting power at all,
docs/staking.md's early-pass rule ``yes * 3 >= total * 2`` holds (0 >= 0) and the model passes
the proposal at once; the chain leaves it voting.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cybermiles.chain.genesis import parse_comp_rate
from cybermiles.chain.params import Params
from cybermiles.execution.call import revert_reason
from cybermiles.modules.addresses import COMMUNITY_POOL, GOVERNANCE, STAKING
from cybermiles.modules.framework.block import DoubleSign
from cybermiles.modules.framework.store import ReadOnlyBackend
from cybermiles.modules.governance import queries as gov_queries
from cybermiles.modules.governance.module import GovernanceModule
from cybermiles.modules.staking import queries as staking_queries
from cybermiles.modules.staking.module import StakingModule

from chain_harness import (  # isort: skip
    CMT,
    GWEI,
    Chain,
    address_of,
    hexaddr,
    key,
    make_genesis,
    validator,
)
from econ_model import (  # isort: skip
    ABSTAIN,
    EXPIRED,
    NO,
    PASSED,
    REJECTED,
    VOTING,
    YES,
    WAD,
    EconModel,
    Refused,
    beacon_for,
)

N_BLOCKS = int(os.environ.get("ECON_BLOCKS", "10000"))
SEED = 20240611
SAMPLE_EVERY = 97  # quiet blocks compared besides the ones where something happened
FULL_EVERY = 4  # every FULL_EVERY-th comparison also reads every delegation (costly queries)
MAX_DELEGATIONS = 12  # the chain's end of block costs ~1 ms per rewarded delegation

PARAMS = {
    "epoch_blocks": 7,
    "unstake_waiting_period": 50,
    "max_vals": 2,
    "backup_vals": 1,
    "min_staking_amount": 500 * CMT,
    "validator_size_threshold": 3000,  # 30%: binds on the largest candidate
    "inflation_rate": 1000,
    "blocks_per_year": 100_000,
    "proposal_expire_period": 25,
    "proposal_deposit": 10 * CMT,
    "jail_period": 40,
    "slash_ratio": 500,
}

# Governance changes the driver proposes: name -> candidate values.
PARAM_CHOICES = {
    "max_vals": [1, 2, 3],
    "backup_vals": [0, 1, 2],
    "epoch_blocks": [5, 7, 9],
    "min_staking_amount": [300 * CMT, 500 * CMT, 900 * CMT],
    "validator_size_threshold": [2500, 3000, 4000, 10000],
    "inflation_rate": [0, 500, 1000, 2000],
    "community_pool_ratio": [0, 300, 500, 1000],
    "validators_block_award_ratio": [7000, 9000, 10000],
    "slash_ratio": [100, 500],
    "unstake_waiting_period": [0, 30, 50, 70],
    "jail_period": [20, 40],
}

STATUS = {"Voting": VOTING, "Approved": PASSED, "Rejected": REJECTED, "Expired": EXPIRED}


def _ab(address: bytes) -> str:
    return hexaddr(address)


def _b(address: str) -> bytes:
    return bytes.fromhex(address[2:])


def _rate(text: str) -> int:
    """A comp rate as the queries show it (``"0.2"``, ``"1"``, ``"0"``)."""
    return parse_comp_rate(text if "." in text else int(text) * WAD, "comp_rate")


# =========================================================================== model self-tests


def _params(**changes: int) -> dict[str, int]:
    return Params().replace(**changes).to_json()


def test_model_two_validator_reward_split_by_hand() -> None:
    v1, v2, d, a = (bytes([i]) * 20 for i in (1, 2, 3, 4))
    params = _params(
        inflation_rate=1000,
        blocks_per_year=1000,
        min_staking_amount=0,
        validator_size_threshold=10000,
        max_vals=2,
        backup_vals=0,
        community_pool_ratio=500,
    )
    m = EconModel(
        params,
        {a: 9_000_000},
        [(v1, b"\x01" * 32, 10_000, 2 * 10**17, [(d, 3000)]), (v2, b"\x02" * 32, 20_000, 0, [])],
    )
    assert m.supply == 9_006_000 and m.validators == [v1, v2] and m.backups == []
    m._move(a, STAKING, 100)  # the block's fees reach the coinbase during its transactions
    m.end_block(1, 100, b"\x00" * 32)
    # mint = 9_006_000 * 1000 // (10000 * 1000) = 900; award 1000; community 50; rest 950
    # r: v1/self 950*1000//6000 = 158, v1/d 950*3000//6000 = 475, v2/self 316; remainder 1
    assert m.supply == 9_006_900
    assert m.dels[(v1, d)].award == 380  # 475 - 475 * 0.2
    assert m.dels[(v1, v1)].award == 158 + 95
    assert m.dels[(v2, v2)].award == 316
    assert m.bal[COMMUNITY_POOL] == 51
    assert m.cands[v1].shares == 1000 + 3000 + 253 + 380 and m.cands[v2].shares == 2316
    assert m.bal[STAKING] == 6000 + 1000 - 51 == m.cands[v1].shares + m.cands[v2].shares


def test_model_backup_split_and_cap_by_hand() -> None:
    a, b, c = (bytes([i]) * 20 for i in (1, 2, 3))
    params = _params(
        inflation_rate=0,
        min_staking_amount=1500,
        validator_size_threshold=3000,
        max_vals=1,
        backup_vals=1,
        community_pool_ratio=0,
        validators_block_award_ratio=9000,
        self_staking_ratio=10000,
    )
    m = EconModel(
        params,
        {},
        [(a, b"a" * 32, 7000, 0, []), (b, b"b" * 32, 2000, 0, []), (c, b"c" * 32, 1000, 0, [])],
    )
    cpow, _ = m.powers(0)
    # T = 10000; a holds 70% > 30%: 7000 * 3000 * 10000 // (10000 * 7000) = 3000; c < min
    assert cpow == {a: 3000, b: 2000, c: 0}
    assert m.validators == [a] and m.backups == [b]  # c has no power: never drawn
    m.bal[STAKING] += 1000
    m.end_block(1, 1000, b"\x00" * 32)  # fees only: 900 to a, 100 to b
    assert m.dels[(a, a)].award == 900 and m.dels[(b, b)].award == 100
    assert m.bal[COMMUNITY_POOL] == 0


def test_model_backup_draw_by_hand() -> None:
    from cybermiles.crypto.keccak import keccak256

    owners = [bytes([i]) * 20 for i in (1, 2, 3, 4)]
    params = _params(
        inflation_rate=0,
        min_staking_amount=0,
        validator_size_threshold=10000,
        max_vals=1,
        backup_vals=2,
        self_staking_ratio=10000,
    )
    m = EconModel(
        params, {}, [(o, bytes([i]) * 32, 1000 * (i + 1), 0, []) for i, o in enumerate(owners)]
    )
    assert m.validators == [owners[3]]
    beacon = beacon_for(b"\x00" * 32)
    rest = {owners[0]: 1000, owners[1]: 2000, owners[2]: 3000}
    expect = []
    for i in range(2):
        r = int.from_bytes(keccak256(beacon + i.to_bytes(32, "big")), "big") % sum(rest.values())
        for o in sorted(rest):
            if r < rest[o]:
                expect.append(o)
                del rest[o]
                break
            r -= rest[o]
    assert m.backups == expect


def test_model_governance_tally_overrides() -> None:
    a, b, d1, d2 = (bytes([i]) * 20 for i in (1, 2, 3, 4))
    params = _params(
        inflation_rate=0,
        min_staking_amount=0,
        validator_size_threshold=10000,
        self_staking_ratio=10000,
        proposal_deposit=5,
        proposal_expire_period=10,
    )
    m = EconModel(
        params,
        {a: 100, d1: 0},
        [(a, b"a" * 32, 1000, 0, [(d1, 500)]), (b, b"b" * 32, 1500, 0, [(d2, 1000)])],
    )
    m.bal[a] -= 5
    m.propose_change_param(1, a, 5, 1, "max_vals", 3, 0)
    m.vote(1, a, 1, YES)
    m.vote(1, d1, 1, NO)
    m.end_block(1, 0, b"\x00" * 32)
    # total 4000; yes = a's own 1000; no = d1's 500; b and d2 did not vote
    assert m.props[1].tally == (1000, 500, 0) and m.props[1].status == VOTING
    m.vote(2, b, 1, YES)  # counts b's 1500 and d2's 1000: yes 3500 * 3 >= 4000 * 2
    m.end_block(2, 0, b"\x00" * 32)
    assert m.props[1].status == PASSED and m.p["max_vals"] == 3 and m.bal[a] == 100
    with pytest.raises(Refused):
        m.vote(3, b, 1, ABSTAIN)


def test_model_unbonding_and_slash_by_hand() -> None:
    a, d = bytes([1]) * 20, bytes([2]) * 20
    params = _params(
        inflation_rate=0,
        min_staking_amount=0,
        self_staking_ratio=1000,
        slash_ratio=1000,
        unstake_waiting_period=3,
        jail_period=5,
    )
    m = EconModel(params, {d: 0}, [(a, b"a" * 32, 10_000, 0, [(d, 2000)])])
    with pytest.raises(Refused):
        m.withdraw(1, a, a, 1)  # the self-stake is locked
    m.withdraw(1, d, a, 500)
    m.end_block(1, 0, b"\x00" * 32, evidence=(a,))
    assert m.dels[(a, d)].slash == 150 and m.dels[(a, a)].slash == 100  # unbonding not slashed
    assert m.bal[COMMUNITY_POOL] == 250 and not m.cands[a].active
    assert m.cands[a].jailed_until == 6
    with pytest.raises(Refused):
        m.activate(5, a)
    for h in (2, 3):
        m.end_block(h, 0, b"\x00" * 32)
    assert m.bal[d] == 0
    m.end_block(4, 0, b"\x00" * 32)
    assert m.bal[d] == 500 and m.pending() == 0
    m.activate(6, a)


# =========================================================================== the replay


@contextmanager
def _data_dir(tmp_path: Path) -> Any:
    """A RAM-backed directory when there is one: LMDB's fsync per block is not under test."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        with tempfile.TemporaryDirectory(dir="/dev/shm") as path:
            yield Path(path)
    else:
        yield tmp_path


class Op:
    """One transaction and what it means to the model."""

    def __init__(
        self,
        sender: int,
        to: bytes,
        data: bytes,
        value: int,
        apply: Any,
        *,
        strict: bool | Any = True,  # or a callable judged when the tx runs
        price: int = GWEI,
        label: str = "",
    ) -> None:
        self.sender, self.to, self.data, self.value = sender, to, data, value
        self.apply, self.strict, self.price, self.label = apply, strict, price, label


class Replay:
    N_KEYS = 16

    def __init__(self, path: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        self.keys = [key(i) for i in range(self.N_KEYS)]
        self.addr = [address_of(k) for k in self.keys]
        a = self.addr
        funded = {x: 1_000_000 * CMT for x in a}
        specs = [  # owner, max_amount, comp rate, delegations
            (0, 400_000 * CMT, "0.1", [(4, 20_000 * CMT), (5, 300 * CMT)]),
            (1, 150_000 * CMT, "0.2", [(6, 5_000 * CMT), (7, 400 * CMT)]),
            (2, 100_000 * CMT, "0.3", [(8, 2_000 * CMT)]),
            (3, 60_000 * CMT, "0.5", [(9, 1_000 * CMT)]),
        ]
        genesis = make_genesis(
            validators=[
                validator(
                    self.keys[o], max_amount=m, comp_rate=r, delegations=[(a[i], v) for i, v in ds]
                )
                for o, m, r, ds in specs
            ],
            funded=funded,
            params=PARAMS,
        )
        self.chain = Chain(path, genesis)
        self.model = EconModel(
            Params(**PARAMS).to_json(),
            funded,
            [
                (
                    a[o],
                    b"\x01" + a[o] + bytes(11),
                    m,
                    parse_comp_rate(r, "r"),
                    [(a[i], v) for i, v in ds],
                )
                for o, m, r, ds in specs
            ],
        )
        self.nonces = [0] * self.N_KEYS
        self.pending_ops: dict[int, list[Op]] = {}  # block -> ops planned for it
        self.counts: dict[str, int] = {}
        self.refused = 0
        self.slashes = 0
        self.unspecified: dict[str, int] = {}
        self.history: list[tuple[int, str, int, int, int, str]] = []  # for failure messages
        self.compared = 0
        self.pub_keys = 0

    # ------------------------------------------------------------------ chain side

    def sign(self, op: Op) -> Any:
        sender = self.keys[op.sender]
        tx = self.chain.tx(
            sender,
            op.to,
            op.data,
            value=op.value,
            gas=3_000_000,
            gas_price=op.price,
            nonce=self.nonces[op.sender],
        )
        self.nonces[op.sender] += 1
        return tx

    @contextmanager
    def backend(self) -> Any:
        with self.chain.chain.state_at() as view:
            yield view, ReadOnlyBackend(view)

    # ------------------------------------------------------------------ planning

    def candidates(self) -> list[bytes]:
        return sorted(self.model.cands)

    def live(self, h: int) -> list[bytes]:
        """Candidates with power: the driver keeps two, so some stake can always vote (with no
        power at all, docs/staking.md's early-pass rule ``yes*3 >= total*2`` reads 0 >= 0;
        the chain does not pass then, see the module docstring)."""
        m = self.model
        return [c for c in self.candidates() if m.cands[c].active and m.cands[c].jailed_until <= h]

    def plan_ops(self, h: int) -> list[Op]:
        rng = self.rng
        kinds = [
            "transfer",
            "delegate",
            "delegate",
            "withdraw",
            "withdraw",
            "activate",
            "deactivate",
            "set_comp_rate",
            "propose",
            "declare",
            "withdraw_candidacy",
            "raise_max",
            "bad_propose",
        ]
        weights = [4, 5, 5, 4, 4, 2, 1, 2, 2, 1, 1, 1, 1]
        ops = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            kind = rng.choices(kinds, weights)[0]
            op = getattr(self, "op_" + kind)(h)
            if op is not None:
                op.label = kind
                ops.append(op)
        return ops  # the same sender twice in a block is fine: nonces are tracked here

    def idx(self, address: bytes) -> int:
        return self.addr.index(address)

    def op_transfer(self, h: int) -> Op:
        rng, a = self.rng, self.addr
        s, r = rng.sample(range(self.N_KEYS), 2)
        value = rng.randrange(0, 50 * CMT)
        price = rng.choice([GWEI, 2 * GWEI, 7 * GWEI, 0])  # 0: a free transfer

        def apply(h: int) -> None:
            self.model._move(a[s], a[r], value)

        return Op(s, a[r], b"", value, apply, price=price)

    def op_delegate(self, h: int) -> Op | None:
        rng, m = self.rng, self.model
        cands = self.candidates()
        if not cands:
            return None
        existing = [(c, d) for c, d in sorted(m.dels) if c != d]
        if existing and (len(m.dels) >= MAX_DELEGATIONS or rng.random() < 0.5):
            c, d = rng.choice(existing)  # top up (the chain's cost grows with delegations)
            s = self.idx(d)
        else:
            c, s = rng.choice(cands), rng.randrange(self.N_KEYS)
        value = rng.choice([rng.randrange(100, 1500), rng.randrange(1500, 30_000)]) * CMT
        if rng.random() < 0.05:
            value = m.cands[c].max_amount  # over the max: refused
        data = StakingModule.calldata("delegate", _ab(c))
        return Op(s, STAKING, data, value, lambda h: m.delegate(h, self.addr[s], value, c))

    def op_withdraw(self, h: int) -> Op | None:
        rng, m = self.rng, self.model
        pairs = sorted(m.dels)
        if not pairs:
            return None
        c, d = rng.choice(pairs)
        shares = m.dels[(c, d)].shares
        amount = rng.choice([shares, rng.randrange(1, shares + 1), shares // 3 + 1, shares + 1])
        if len(m.dels) >= MAX_DELEGATIONS and rng.random() < 0.5:
            amount = shares
        if d == c and c in m.cands and rng.random() < 0.7:
            amount = max(1, (shares - m.cands[c].self_stake) // 2)  # the unlocked part
        data = StakingModule.calldata("withdraw", _ab(c), amount)
        return Op(self.idx(d), STAKING, data, 0, lambda h: m.withdraw(h, d, c, amount))

    def op_activate(self, h: int) -> Op | None:
        m = self.model
        inactive = [c for c in self.candidates() if not m.cands[c].active]
        pool = inactive or self.candidates()
        if not pool:
            return None
        c = self.rng.choice(pool)
        return Op(
            self.idx(c),
            STAKING,
            StakingModule.calldata("activateCandidacy"),
            0,
            lambda h: m.activate(h, c),
            # re-activating an active candidate is unspecified; judged when the tx runs
            strict=lambda: c not in m.cands or not m.cands[c].active,
        )

    def op_deactivate(self, h: int) -> Op | None:
        m = self.model
        live = self.live(h)
        if len(live) <= 2:
            return None
        c = self.rng.choice(live)
        return Op(
            self.idx(c),
            STAKING,
            StakingModule.calldata("deactivateCandidacy"),
            0,
            lambda h: m.deactivate(h, c),
        )

    def op_set_comp_rate(self, h: int) -> Op | None:
        rng, m = self.rng, self.model
        pairs = [(c, d) for c, d in sorted(m.dels) if c != d and c in m.cands]
        if not pairs:
            return None
        c, d = rng.choice(pairs)
        top = m.cands[c].comp_rate
        rate = rng.choice([0, top, rng.randrange(0, top + 1), top + 1 if top < WAD else top])
        data = StakingModule.calldata("setCompRate", _ab(d), rate)
        return Op(self.idx(c), STAKING, data, 0, lambda h: m.set_comp_rate(h, c, d, rate))

    def op_declare(self, h: int) -> Op | None:
        rng, m = self.rng, self.model
        free = [i for i in (10, 11, 12, 13, 14, 15) if self.addr[i] not in m.cands]
        if not free or len(m.cands) >= 6:
            return None
        i = rng.choice(free)
        owner = self.addr[i]
        self.pub_keys += 1
        pub_key = (
            m.cands[rng.choice(self.candidates())].pub_key  # taken: refused
            if rng.random() < 0.1 and m.cands
            else self.pub_keys.to_bytes(4, "big") + owner + bytes(8)
        )
        max_amount = rng.choice([50_000, 80_000, 120_000]) * CMT
        rate = rng.choice([0, 10**17, 25 * 10**16, WAD])
        value = max_amount * m.p["self_staking_ratio"] // 10_000
        if rng.random() < 0.1:
            value += 1  # not the exact self-stake: refused
        data = StakingModule.calldata(
            "declareCandidacy", pub_key, max_amount, rate, (f"c{i}", "", "", "", "")
        )
        return Op(
            i, STAKING, data, value, lambda h: m.declare(h, owner, value, pub_key, max_amount, rate)
        )

    def op_raise_max(self, h: int) -> Op | None:
        rng, m = self.rng, self.model
        mine = [c for c in self.candidates() if c in self.addr]
        if not mine:
            return None
        c = rng.choice(mine)
        cand = m.cands[c]
        new_max = cand.max_amount + rng.choice([0, 10_000, 40_000]) * CMT
        value = max(new_max * m.p["self_staking_ratio"] // 10_000 - cand.self_stake, 0)
        name = self.description(c)
        data = StakingModule.calldata(
            "updateCandidacy", cand.pub_key, new_max, cand.comp_rate, (name, "", "", "", "")
        )
        return Op(self.idx(c), STAKING, data, value, lambda h: m.raise_max(h, c, value, new_max))

    def description(self, c: bytes) -> str:
        i = self.idx(c)
        return f"c{i}" if i >= 10 else ""

    def op_withdraw_candidacy(self, h: int) -> Op | None:
        m = self.model
        live = self.live(h)
        pool = [c for c in self.candidates() if c not in live or len(live) > 2]
        if len(m.cands) <= 3 or not pool:
            return None
        c = self.rng.choice(pool)
        return Op(
            self.idx(c),
            STAKING,
            StakingModule.calldata("withdrawCandidacy"),
            0,
            lambda h: m.withdraw_candidacy(h, c),
        )

    def op_bad_propose(self, h: int) -> Op | None:
        """A proposal refused: no stake, a small deposit, or an out-of-range value."""
        rng, m = self.rng, self.model
        nostake = [
            i
            for i in range(self.N_KEYS)
            if m.shares_of(self.addr[i]) == 0 and self.addr[i] not in m.cands
        ]
        case = rng.randrange(3)
        if case == 0 and nostake:
            s, value, name, new = rng.choice(nostake), m.p["proposal_deposit"], "max_vals", 3
        elif case == 1:
            s, value, name, new = 0, m.p["proposal_deposit"] - 1, "max_vals", 3
        else:
            s, value, name, new = 0, m.p["proposal_deposit"], "slash_ratio", 10_001
        data = GovernanceModule.calldata("proposeChangeParam", name, new, h)
        # pid unknown: only refusals are expected here
        return Op(
            s,
            GOVERNANCE,
            data,
            value,
            lambda h: m.propose_change_param(h, self.addr[s], value, -1, name, new, h),
        )

    def op_propose(self, h: int) -> Op | None:
        rng, m = self.rng, self.model
        if any(p.status == VOTING for p in m.props.values()) or m.scheduled:
            return None
        proposer = rng.choice(self.candidates())
        name = rng.choice(sorted(PARAM_CHOICES))
        new = rng.choice(PARAM_CHOICES[name])
        height = h + rng.choice([0, 0, 3, 12, 40])
        deposit = m.p["proposal_deposit"] + rng.choice([0, 0, CMT])
        data = GovernanceModule.calldata("proposeChangeParam", name, new, height)
        s = self.idx(proposer)
        op = Op(s, GOVERNANCE, data, deposit, None)

        def apply(h: int) -> None:
            m.propose_change_param(h, proposer, deposit, op.pid, name, new, height)
            if op.pid >= 0:
                self.plan_votes(h, op.pid)

        op.apply = apply
        op.pid = -1
        return op

    def plan_votes(self, h: int, pid: int) -> None:
        """Candidates (and some delegators) vote in the next few blocks."""
        rng, m = self.rng, self.model
        if rng.random() < 0.12:
            return  # nobody votes: the proposal expires and its deposit goes to the pool
        voters = list(self.candidates())
        voters += [d for (c, d) in sorted(m.dels) if c != d and rng.random() < 0.3]
        answers = [YES] * 8 + [NO] * 2 + [ABSTAIN]
        if rng.random() < 0.2:
            answers = [NO, ABSTAIN, YES]  # likely rejected or expired
        for v in voters:
            if v not in self.addr or rng.random() < 0.15:
                continue
            at = h + rng.randrange(1, 6)
            answer = rng.choice(answers)
            data = GovernanceModule.calldata("vote", pid, answer)
            self.pending_ops.setdefault(at, []).append(
                Op(
                    self.idx(v),
                    GOVERNANCE,
                    data,
                    0,
                    lambda h, v=v, answer=answer: m.vote(h, v, pid, answer),
                    strict=False,
                    label="vote",
                )
            )

    # ------------------------------------------------------------------ running

    def run(self, n_blocks: int) -> None:
        rng, m = self.rng, self.model
        next_op = rng.randrange(5, 30)
        for h in range(1, n_blocks + 1):
            ops = self.pending_ops.pop(h, [])
            if h == next_op:
                ops += self.plan_ops(h)
                next_op = h + rng.randrange(10, 45)
            evidence: tuple[DoubleSign, ...] = ()
            if rng.random() < 1 / 350:
                live = self.live(h)
                targets = [
                    c
                    for c in self.candidates()
                    if not m.cands[c].jailed_until > h and (c not in live or len(live) > 2)
                ]
                if targets:
                    evidence = (DoubleSign(rng.choice(targets), h - 1),)
            self.slashes += len(evidence)
            txs = [self.sign(op) for op in ops]
            block = self.chain.chain.build_block(
                txs,
                timestamp=self.chain.chain.head.timestamp + 1,
                coinbase=STAKING,
                evidence=evidence,
            )
            assert block.rejected == [], [str(e) for _, e in block.rejected]
            fees = 0
            for i, (op, receipt) in enumerate(zip(ops, block.receipts, strict=True)):
                fee = Chain.gas_of(block, i) * op.price
                fees += fee
                m._move(self.addr[op.sender], STAKING, fee)
                self.apply(h, op, receipt)
            m.end_block(h, fees, block.header.parent_hash, tuple(e.candidate for e in evidence))
            if ops or evidence or h % SAMPLE_EVERY == 0 or h == n_blocks:
                self.compare(h, final=h == n_blocks)

    def apply(self, h: int, op: Op, receipt: Any) -> None:
        m = self.model
        self.history.append((h, op.label, op.sender, op.value, receipt.status, op.data[:68].hex()))
        if op.label == "propose" and receipt.status == 1:
            op.pid = int.from_bytes(receipt.logs[0].topics[1], "big")
        strict = op.strict() if callable(op.strict) else op.strict
        if not strict and receipt.status != 1:
            # unspecified by docs/staking.md (re-activating, voting on a decided proposal)
            self.unspecified[op.label] = self.unspecified.get(op.label, 0) + 1
            return
        try:
            op.apply(h)
        except Refused as exc:
            self.refused += 1
            if receipt.status == 1 and strict:
                self.fail(h, f"{op.label}: the model refuses ({exc}) but the chain accepted")
            return
        self.counts[op.label] = self.counts.get(op.label, 0) + 1
        if receipt.status != 1:
            self.fail(
                h, f"{op.label}: the model accepts but the chain reverted ({self.why(h, op)})"
            )
        if op.label != "transfer":
            m.bal[self.addr[op.sender]] -= op.value

    def why(self, h: int, op: Op) -> str:
        """The revert reason of ``op`` replayed as a call on the state before block ``h``."""
        result = self.chain.call(
            op.to, op.data, sender=self.addr[op.sender], value=op.value, height=h - 1
        )
        return (
            "succeeds as a call before the block"
            if result.success
            else str(revert_reason(result.output))
        )

    def fail(self, h: int, message: str) -> None:
        raise AssertionError(f"block {h}: {message}")

    # ------------------------------------------------------------------ comparing

    def compare(self, h: int, final: bool = False) -> None:
        m = self.model
        self.compared += 1
        params = self.chain.chain.params
        with self.backend() as (view, be):
            for address, expected in m.bal.items():
                assert view.get_balance(address) == expected, (
                    h,
                    "balance",
                    address.hex(),
                    view.get_balance(address),
                    expected,
                )
            assert staking_queries.total_supply(be) == m.supply, (h, "total supply")
            assert params.to_json() == m.p, (h, "params", params.to_json(), m.p)
            cpow, dpow = m.powers(h)
            got = {_b(c["owner_address"]): c for c in staking_queries.validators(be, params)}
            assert sorted(got) == sorted(m.cands), (h, "candidates")
            for owner, c in m.cands.items():
                row = got[owner]
                assert (
                    int(row["shares"]),
                    int(row["max_shares"]),
                    int(row["self_stake"]),
                    _rate(row["comp_rate"]),
                    row["active"] == "Y",
                    row["jailed_until"],
                    int(row["voting_power"]),
                ) == (
                    c.shares,
                    c.max_amount,
                    c.self_stake,
                    c.comp_rate,
                    c.active,
                    c.jailed_until,
                    cpow.get(owner, 0),
                ), (h, "candidate", owner.hex(), row, c)
            counts = {c: 0 for c in m.cands}
            for c, _ in m.dels:
                counts[c] += 1
            assert {o: r["num_of_delegators"] for o, r in got.items()} == counts, (h, "counts")
            full = self.compared % FULL_EVERY == 0 or final
            seen = set()
            for address in sorted({d for _, d in m.dels}) if full else ():
                for row in staking_queries.delegator(be, params, address):
                    cand = _b(row["validator_address"])
                    d = m.dels.get((cand, address))
                    assert d is not None, (h, "extra delegation", cand.hex(), address.hex())
                    seen.add((cand, address))
                    rate = _rate(row["comp_rate"])
                    assert (
                        int(row["delegate_amount"]),
                        int(row["award_amount"]),
                        int(row["withdraw_amount"]),
                        int(row["slash_amount"]),
                        int(row["shares"]),
                        rate,
                        int(row["voting_power"]),
                    ) == (
                        d.delegate,
                        d.award,
                        d.withdraw,
                        d.slash,
                        d.shares,
                        d.comp_rate,
                        dpow.get((cand, address), 0),
                    ), (h, "delegation", row, d)
            assert not full or seen == set(m.dels), (h, "missing delegations", set(m.dels) - seen)
            assert m.bal[STAKING] == sum(c.shares for c in m.cands.values()) + m.pending()
            for row in gov_queries.proposals(be, params):
                p = m.props.get(row["id"])
                assert p is not None, (h, "extra proposal", row)
                assert STATUS[row["result"]] == p.status, (h, "proposal status", row, p)
                if p.status != VOTING:
                    votes = row["votes"]
                    assert (
                        int(votes["yes"]),
                        int(votes["no"]),
                        int(votes["abstain"]),
                    ) == p.tally, (h, "proposal tally", row, p)
        got_validators = [_b(x) for x in self.chain.view(StakingModule, "validators")]
        assert got_validators == m.validators, (h, "validators", got_validators, m.validators)
        got_backups = [_b(x) for x in self.chain.view(StakingModule, "backups")]
        assert got_backups == m.backups, (h, "backups", got_backups, m.backups)


@pytest.mark.timeout(300)
def test_economics_replay_matches_model(tmp_path: Path) -> None:
    with _data_dir(tmp_path) as path:
        replay = Replay(path, SEED)
        started = time.perf_counter()
        try:
            replay.run(N_BLOCKS)
        finally:
            replay.chain.close()
        elapsed = time.perf_counter() - started
        m = replay.model
        print(
            f"\n{N_BLOCKS} blocks in {elapsed:.1f}s ({elapsed / N_BLOCKS * 1000:.2f} ms/block); "
            f"ops {replay.counts}; refused {replay.refused}; compared {replay.compared}; "
            f"proposals {sorted((p.name, p.status) for p in m.props.values())}; "
            f"double signs {replay.slashes}; unspecified reverts {replay.unspecified}"
        )
        # the run exercised what it is meant to
        assert replay.counts.get("delegate", 0) >= 20 and replay.counts.get("withdraw", 0) >= 20
        statuses = {p.status for p in m.props.values()}
        assert {PASSED, REJECTED, EXPIRED} <= statuses, statuses
        assert replay.slashes >= 5
        assert any(d.slash for d in m.dels.values()) or m.bal[COMMUNITY_POOL] > 0
