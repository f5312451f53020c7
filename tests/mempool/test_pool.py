"""Transaction pool: admission errors, ordering, replacement, caps, free quota, lifecycle."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import threading
import time
from dataclasses import dataclass, field

import pytest
from eth_account import Account
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cybermiles.chain.errors import InvalidTransaction
from cybermiles.chain.transactions import (
    DYNAMIC_FEE_TX_TYPE,
    LEGACY_TX_TYPE,
    SET_CODE_TX_TYPE,
    Authorization,
    Transaction,
    decode_transaction,
)
from cybermiles.mempool import (
    AccountLimitExceeded,
    AlreadyKnown,
    ExceedsBlockGasLimit,
    FloorDataGasTooLow,
    FutureReplacePending,
    InsufficientFunds,
    IntrinsicGasTooLow,
    Mempool,
    MempoolConfig,
    MempoolError,
    NonceTooLow,
    OversizedData,
    ReplacementUnderpriced,
    TipAboveFeeCap,
    TxPoolFull,
    Underpriced,
    effective_gas_price,
)

GWEI = 10**9
ETHER = 10**18


def addr(i: int) -> bytes:
    """A test address outside the reserved range below 0x10000 (precompiles, modules)."""
    return ((0xABCD << 128) | i).to_bytes(20, "big")


A, B, C, D = addr(0xA), addr(0xB), addr(0xC), addr(0xD)
RECIPIENT = addr(0xEE)
CONTRACT = addr(0xCC)
_salt = itertools.count()


def make_tx(
    sender: bytes = A,
    nonce: int = 0,
    fee: int = 2 * GWEI,
    tip: int | None = None,
    gas: int = 21_000,
    to: bytes | None = RECIPIENT,
    value: int = 0,
    data: bytes = b"",
    tx_type: int = DYNAMIC_FEE_TX_TYPE,
    raw_size: int = 110,
    authorizations: tuple[Authorization, ...] = (),
    access_list: tuple = (),
) -> Transaction:
    """A decoded-looking transaction; the hash is unique per call."""
    tip = fee if tip is None else tip
    if tx_type == LEGACY_TX_TYPE:
        tip = fee
    salt = next(_salt)
    tx_hash = hashlib.sha256(f"{salt}:{sender.hex()}:{nonce}:{fee}:{tip}".encode()).digest()
    return Transaction(
        type=tx_type,
        chain_id=18,
        nonce=nonce,
        gas_price=fee,
        max_priority_fee_per_gas=tip,
        max_fee_per_gas=fee,
        gas=gas,
        to=to,
        value=value,
        data=data,
        access_list=access_list,
        authorization_list=authorizations,
        v=0,
        r=1,
        s=1,
        sender=sender,
        hash=tx_hash,
        raw=b"\x02" * raw_size,
    )


@dataclass
class FakeState:
    """Dict-backed StateReader."""

    nonces: dict[bytes, int] = field(default_factory=dict)
    balances: dict[bytes, int] = field(default_factory=dict)
    code: set[bytes] = field(default_factory=set)
    free_used: dict[bytes, int] = field(default_factory=dict)
    default_balance: int = 1000 * ETHER

    def get_nonce(self, addr: bytes) -> int:
        return self.nonces.get(addr, 0)

    def get_balance(self, addr: bytes) -> int:
        return self.balances.get(addr, self.default_balance)

    def has_code(self, addr: bytes) -> bool:
        return addr in self.code

    def free_txs_used(self, addr: bytes) -> int:
        return self.free_used.get(addr, 0)


def new_pool(**overrides: int) -> tuple[Mempool, FakeState]:
    params = {"min_gas_price": GWEI, "free_tx_quota": 2, "block_gas_limit": 30_000_000}
    params.update(overrides)
    state = FakeState(code={CONTRACT})
    return Mempool(MempoolConfig(**params), state), state


def hashes(txs: list[Transaction]) -> list[bytes]:
    return [tx.hash for tx in txs]


# ---------------------------------------------------------------- real signed transactions

CHAIN_ID = 18


def signed(key: bytes, nonce: int, **fields: int | bytes) -> Transaction:
    """Sign with eth-account and decode with the node's decoder (sender recovered)."""
    tx: dict[str, int | bytes] = {
        "chainId": CHAIN_ID,
        "nonce": nonce,
        "gas": 21_000,
        "to": RECIPIENT,
        "value": 1,
    }
    if "gasPrice" not in fields:
        tx |= {"maxFeePerGas": 2 * GWEI, "maxPriorityFeePerGas": 2 * GWEI}
    tx |= fields
    raw = Account.sign_transaction(tx, key).raw_transaction
    return decode_transaction(bytes(raw), CHAIN_ID)


def test_signed_transactions_round_trip() -> None:
    k1, k2 = b"\x11" * 32, b"\x22" * 32
    pool, state = new_pool()
    a0 = signed(k1, 0, maxFeePerGas=3 * GWEI, maxPriorityFeePerGas=3 * GWEI)
    a1 = signed(k1, 1, maxFeePerGas=9 * GWEI, maxPriorityFeePerGas=9 * GWEI)
    b0 = signed(k2, 0, maxFeePerGas=5 * GWEI, maxPriorityFeePerGas=5 * GWEI)
    legacy = signed(k2, 1, gasPrice=4 * GWEI)
    for tx in (a1, a0, legacy, b0):
        pool.add(tx)
    assert pool.select(30_000_000) == [b0, legacy, a0, a1]
    assert pool.pending_nonce(a0.sender) == 2
    with pytest.raises(IntrinsicGasTooLow):
        pool.add(signed(k1, 2, gas=21_000, data=b"\x01"))
    with pytest.raises(ReplacementUnderpriced):
        pool.add(signed(k1, 1, maxFeePerGas=9 * GWEI + 1, maxPriorityFeePerGas=9 * GWEI + 1))
    state.nonces[a0.sender] = 2
    pool.remove_included([a0, a1])
    assert pool.pending_txs() == [b0, legacy]


# ---------------------------------------------------------------- ordering


def test_select_orders_by_price_across_senders_and_nonce_within_sender() -> None:
    pool, _ = new_pool()
    a0 = make_tx(A, 0, fee=5 * GWEI)
    a1 = make_tx(A, 1, fee=50 * GWEI)
    b0 = make_tx(B, 0, fee=10 * GWEI)
    c0 = make_tx(C, 0, fee=10 * GWEI)  # same price as b0, arrives later
    b1 = make_tx(B, 1, fee=3 * GWEI)
    for tx in (a1, b1, a0, c0, b0):  # arrival order differs from nonce order on purpose
        pool.add(tx)
    assert hashes(pool.select(30_000_000)) == hashes([c0, b0, a0, a1, b1])


def test_select_breaks_price_ties_by_arrival() -> None:
    pool, _ = new_pool()
    txs = [make_tx(s, 0, fee=3 * GWEI) for s in (D, B, A, C)]
    for tx in txs:
        pool.add(tx)
    assert hashes(pool.select(30_000_000)) == hashes(txs)


def test_select_uses_effective_price_not_fee_cap() -> None:
    pool, _ = new_pool()
    rich_cap = make_tx(A, 0, fee=100 * GWEI, tip=2 * GWEI)  # pays 2 gwei with base fee 0
    honest = make_tx(B, 0, fee=5 * GWEI, tip=5 * GWEI)
    pool.add(rich_cap)
    pool.add(honest)
    assert effective_gas_price(rich_cap) == 2 * GWEI
    assert hashes(pool.select(30_000_000)) == hashes([honest, rich_cap])


def test_select_respects_gas_limit_skipping_sender_and_continuing() -> None:
    pool, _ = new_pool()
    a0 = make_tx(A, 0, fee=9 * GWEI, gas=100_000)
    a1 = make_tx(A, 1, fee=9 * GWEI, gas=21_000)
    b0 = make_tx(B, 0, fee=8 * GWEI, gas=60_000)
    c0 = make_tx(C, 0, fee=7 * GWEI, gas=21_000)
    c1 = make_tx(C, 1, fee=7 * GWEI, gas=21_000)
    for tx in (a0, a1, b0, c0, c1):
        pool.add(tx)
    # a0 does not fit 90k: A is skipped entirely (a1 must not jump its nonce)
    assert hashes(pool.select(90_000)) == hashes([b0, c0])
    assert hashes(pool.select(200_000)) == hashes([a0, a1, b0])
    assert pool.select(20_999) == []
    assert len(pool.select(30_000_000)) == 5


def test_select_respects_max_count() -> None:
    pool, _ = new_pool()
    txs = [make_tx(A, n, fee=(10 - n) * GWEI) for n in range(5)]
    for tx in txs:
        pool.add(tx)
    assert hashes(pool.select(30_000_000, max_count=3)) == hashes(txs[:3])
    assert pool.select(30_000_000, max_count=0) == []
    with pytest.raises(ValueError):
        pool.select(30_000_000, max_count=-1)


def test_select_excludes_queued() -> None:
    pool, _ = new_pool()
    pool.add(make_tx(A, 0))
    pool.add(make_tx(A, 2))
    assert [tx.nonce for tx in pool.select(30_000_000)] == [0]


# ---------------------------------------------------------------- replacement


@pytest.mark.parametrize(
    ("fee", "tip", "accepted"),
    [
        (110, 110, True),  # exactly +10% on both
        (200, 150, True),
        (109, 109, False),  # +9%
        (110, 109, False),
        (109, 110, False),
        (110, 100, False),  # fee-cap-only bump
        (100, 110, False),  # tip-only bump (tip above fee cap is caught earlier anyway)
        (100, 100, False),
    ],
)
def test_replacement_price_bump(fee: int, tip: int, accepted: bool) -> None:
    pool, _ = new_pool()
    old = make_tx(A, 0, fee=100 * GWEI, tip=100 * GWEI)
    pool.add(old)
    new = make_tx(A, 0, fee=fee * GWEI, tip=tip * GWEI)
    if not accepted:
        with pytest.raises((ReplacementUnderpriced, TipAboveFeeCap)):
            pool.add(new)
        assert pool.get(old.hash) is old
        return
    pool.add(new)
    assert old.hash not in pool
    assert pool.get(new.hash) is new
    assert len(pool) == 1
    assert pool.status() == {"pending": 1, "queued": 0}


def test_replacement_of_queued_tx_keeps_it_queued() -> None:
    pool, _ = new_pool()
    pool.add(make_tx(A, 0))
    old = make_tx(A, 2, fee=10 * GWEI)
    pool.add(old)
    new = make_tx(A, 2, fee=11 * GWEI)
    pool.add(new)
    assert pool.content()["queued"] == {A: {2: new}}
    pool._check_invariants()


def test_replacement_allowed_at_account_and_global_caps() -> None:
    pool, _ = new_pool(account_slots=1, global_slots=1)
    pool.add(make_tx(A, 0, fee=10 * GWEI))
    new = make_tx(A, 0, fee=11 * GWEI)
    pool.add(new)
    assert pool.pending_txs() == [new]


# ---------------------------------------------------------------- error messages


def _msg(exc: pytest.ExceptionInfo[MempoolError]) -> str:
    return str(exc.value)


def test_error_already_known() -> None:
    pool, _ = new_pool()
    tx = make_tx()
    pool.add(tx)
    with pytest.raises(AlreadyKnown) as exc:
        pool.add(tx)
    assert _msg(exc) == "already known"


def test_error_oversized_data() -> None:
    pool, _ = new_pool()
    pool.add(make_tx(A, 0, raw_size=128 * 1024))
    with pytest.raises(OversizedData) as exc:
        pool.add(make_tx(A, 1, raw_size=128 * 1024 + 1))
    assert _msg(exc) == "oversized data: transaction size 131073, limit 131072"


def test_error_exceeds_block_gas_limit() -> None:
    pool, _ = new_pool(block_gas_limit=1_000_000)
    pool.add(make_tx(A, 0, gas=1_000_000))
    with pytest.raises(ExceedsBlockGasLimit) as exc:
        pool.add(make_tx(A, 1, gas=1_000_001))
    assert _msg(exc) == "exceeds block gas limit"


def test_error_tip_above_fee_cap() -> None:
    pool, _ = new_pool()
    with pytest.raises(TipAboveFeeCap) as exc:
        pool.add(make_tx(fee=2 * GWEI, tip=2 * GWEI + 1))
    assert _msg(exc) == "max priority fee per gas higher than max fee per gas"


def test_error_nonce_too_low() -> None:
    pool, state = new_pool()
    state.nonces[A] = 5
    with pytest.raises(NonceTooLow) as exc:
        pool.add(make_tx(A, 3))
    assert _msg(exc) == "nonce too low: next nonce 5, tx nonce 3"
    pool.add(make_tx(A, 5))


def test_error_intrinsic_gas_too_low() -> None:
    pool, _ = new_pool()
    with pytest.raises(IntrinsicGasTooLow) as exc:
        pool.add(make_tx(gas=20_999))
    assert _msg(exc) == "intrinsic gas too low: gas 20999, minimum needed 21000"
    with pytest.raises(IntrinsicGasTooLow) as exc:  # 21000 + 2*4 + 2*16
        pool.add(make_tx(gas=21_039, data=b"\x00\x00\x01\x02"))
    assert _msg(exc).endswith("minimum needed 21040")
    with pytest.raises(IntrinsicGasTooLow) as exc:  # create: +32000, +2 per initcode word
        pool.add(make_tx(gas=53_000 + 16 + 1, to=None, data=b"\x01"))
    assert _msg(exc).endswith("minimum needed 53018")


def test_error_floor_data_gas_too_low() -> None:
    pool, _ = new_pool()
    data = b"\x01" * 1000  # intrinsic 37000, EIP-7623 floor 21000 + 10 * 4000 = 61000
    with pytest.raises(FloorDataGasTooLow) as exc:
        pool.add(make_tx(gas=60_999, data=data))
    assert isinstance(exc.value, IntrinsicGasTooLow)
    assert _msg(exc) == "insufficient gas for floor data gas cost: gas 60999, minimum needed 61000"
    pool.add(make_tx(gas=61_000, data=data))


def test_error_transaction_underpriced() -> None:
    pool, _ = new_pool(free_tx_quota=0)
    with pytest.raises(Underpriced) as exc:
        pool.add(make_tx(fee=GWEI - 1))
    assert _msg(exc).startswith("transaction underpriced: ")


def test_error_insufficient_funds() -> None:
    pool, state = new_pool()
    state.balances[A] = 21_000 * 2 * GWEI + 99
    pool.add(make_tx(A, 0, fee=2 * GWEI, value=99))
    with pytest.raises(InsufficientFunds) as exc:
        pool.add(make_tx(A, 1, fee=2 * GWEI, value=100))
    assert _msg(exc) == (
        "insufficient funds for gas * price + value: "
        f"balance {state.balances[A]}, tx cost {state.balances[A] + 1}, overshot 1"
    )


def test_insufficient_funds_uses_fee_cap_not_effective_price() -> None:
    pool, state = new_pool()
    state.balances[A] = 21_000 * 10 * GWEI - 1
    with pytest.raises(InsufficientFunds):
        pool.add(make_tx(A, 0, fee=10 * GWEI, tip=2 * GWEI))


def test_error_replacement_underpriced() -> None:
    pool, _ = new_pool()
    pool.add(make_tx(A, 0, fee=10 * GWEI))
    with pytest.raises(ReplacementUnderpriced) as exc:
        pool.add(make_tx(A, 0, fee=10 * GWEI))
    assert _msg(exc) == "replacement transaction underpriced"


def test_error_account_limit_exceeded() -> None:
    pool, _ = new_pool(account_slots=3)
    for n in (0, 1, 5):
        pool.add(make_tx(A, n))
    with pytest.raises(AccountLimitExceeded) as exc:
        pool.add(make_tx(A, 2))
    assert _msg(exc) == "account limit exceeded: pooled 3 txs"
    pool.add(make_tx(B, 0))  # other senders unaffected
    assert len(pool) == 4


def test_error_txpool_is_full() -> None:
    pool, _ = new_pool(global_slots=2)
    pool.add(make_tx(A, 0, fee=5 * GWEI))
    pool.add(make_tx(B, 0, fee=5 * GWEI))
    with pytest.raises(TxPoolFull) as exc:
        pool.add(make_tx(C, 0, fee=5 * GWEI))  # must pay strictly more
    assert _msg(exc).startswith("txpool is full")


def test_errors_are_invalid_transactions() -> None:
    pool, _ = new_pool()
    tx = make_tx()
    pool.add(tx)
    with pytest.raises(InvalidTransaction):
        pool.add(tx)


def test_error_check_order() -> None:
    """A tx failing several checks reports the first one in the documented order."""
    pool, state = new_pool(block_gas_limit=100_000)
    state.nonces[A] = 1
    state.balances[A] = 0
    bad = dict(sender=A, nonce=0, fee=GWEI // 2, tip=GWEI, gas=20_000, to=CONTRACT, data=b"x")
    with pytest.raises(OversizedData):
        pool.add(make_tx(**bad, raw_size=200_000))
    bad["gas"] = 200_000
    with pytest.raises(ExceedsBlockGasLimit):
        pool.add(make_tx(**bad))
    bad["gas"] = 20_000
    with pytest.raises(TipAboveFeeCap):
        pool.add(make_tx(**bad))
    bad["tip"] = 0
    with pytest.raises(NonceTooLow):
        pool.add(make_tx(**bad))
    bad["nonce"] = 1
    with pytest.raises(IntrinsicGasTooLow):
        pool.add(make_tx(**bad))
    bad["gas"] = 50_000
    with pytest.raises(Underpriced):
        pool.add(make_tx(**bad))
    bad["fee"] = bad["tip"] = GWEI
    with pytest.raises(InsufficientFunds):
        pool.add(make_tx(**bad))
    assert len(pool) == 0


# ---------------------------------------------------------------- pending / queued


def test_gapped_tx_is_queued_then_promoted_when_gap_fills() -> None:
    seen: list[Transaction] = []
    pool, state = new_pool()
    pool.on_added = seen.append
    state.nonces[A] = 3
    t3, t5, t6 = make_tx(A, 3), make_tx(A, 5), make_tx(A, 6)
    for tx in (t3, t5, t6):
        pool.add(tx)
    assert pool.status() == {"pending": 1, "queued": 2}
    assert pool.pending_nonce(A) == 4
    assert pool.pending_nonce(B) == 0
    assert pool.content() == {"pending": {A: {3: t3}}, "queued": {A: {5: t5, 6: t6}}}
    assert pool.queued_txs() == [t5, t6]
    assert seen == [t3]
    t4 = make_tx(A, 4)
    pool.add(t4)
    assert pool.status() == {"pending": 4, "queued": 0}
    assert pool.pending_nonce(A) == 7
    assert pool.pending_txs() == [t3, t4, t5, t6]
    assert seen == [t3, t4, t5, t6]
    pool._check_invariants()


def test_queued_only_sender() -> None:
    pool, _ = new_pool()
    pool.add(make_tx(A, 1))
    assert pool.status() == {"pending": 0, "queued": 1}
    assert pool.pending_nonce(A) == 0
    assert pool.select(30_000_000) == []


def test_listener_failure_does_not_break_add() -> None:
    def boom(tx: Transaction) -> None:
        raise RuntimeError("subscriber gone")

    pool, _ = new_pool()
    pool.on_added = boom
    tx = make_tx()
    pool.add(tx)
    assert tx.hash in pool


# ---------------------------------------------------------------- block lifecycle


def test_remove_included_advances_nonce_and_drops_stale() -> None:
    pool, state = new_pool()
    txs = [make_tx(A, n) for n in range(5)]
    for tx in txs:
        pool.add(tx)
    b0 = make_tx(B, 0)
    pool.add(b0)
    mined = txs[:3]
    # State not yet updated when the producer calls remove_included: the pool still advances.
    pool.remove_included(mined)
    assert len(pool) == 3
    assert all(tx.hash not in pool for tx in mined)
    assert pool.pending_txs() == [txs[3], txs[4], b0]
    state.nonces[A] = 3
    pool.reset()
    assert pool.pending_nonce(A) == 5
    pool._check_invariants()


def test_remove_included_drops_competing_tx_with_same_nonce() -> None:
    pool, state = new_pool()
    ours = make_tx(A, 0)
    pool.add(ours)
    theirs = make_tx(A, 0, fee=3 * GWEI)  # a different tx with nonce 0 won in someone's block
    state.nonces[A] = 1
    pool.remove_included([theirs])
    assert len(pool) == 0
    assert pool.status() == {"pending": 0, "queued": 0}


def test_reset_drops_below_nonce_and_promotes_queued() -> None:
    seen: list[Transaction] = []
    pool, state = new_pool()
    pool.add(make_tx(A, 0))
    t2, t3 = make_tx(A, 2), make_tx(A, 3)
    pool.add(t2)
    pool.add(t3)
    pool.on_added = seen.append
    state.nonces[A] = 2  # nonces 0 and 1 consumed elsewhere
    pool.reset()
    assert pool.status() == {"pending": 2, "queued": 0}
    assert pool.pending_txs() == [t2, t3]
    assert seen == [t2, t3]
    state.nonces[A] = 10
    pool.reset()
    assert len(pool) == 0
    pool._check_invariants()


def test_add_catches_up_with_state_without_reset() -> None:
    seen: list[Transaction] = []
    pool, state = new_pool()
    pool.add(make_tx(A, 0))
    t2 = make_tx(A, 2)
    pool.add(t2)
    pool.on_added = seen.append
    state.nonces[A] = 1
    t1 = make_tx(A, 1)
    pool.add(t1)
    assert pool.pending_txs() == [t1, t2]
    assert seen == [t1, t2]
    with pytest.raises(NonceTooLow):
        pool.add(make_tx(A, 0))
    t5 = make_tx(A, 5)
    pool.add(t5)
    state.nonces[A] = 5  # the chain consumed 1..4 elsewhere; a refused add still catches up
    with pytest.raises(NonceTooLow):
        pool.add(make_tx(A, 4))
    assert pool.pending_txs() == [t5]
    assert seen == [t1, t2, t5]
    pool._check_invariants()


# ---------------------------------------------------------------- caps and eviction


def test_global_cap_evicts_lowest_priced_and_rejects_cheaper() -> None:
    pool, _ = new_pool(global_slots=3)
    a0 = make_tx(A, 0, fee=5 * GWEI)
    b0 = make_tx(B, 0, fee=6 * GWEI)
    c0 = make_tx(C, 0, fee=7 * GWEI)
    for tx in (a0, b0, c0):
        pool.add(tx)
    d0 = make_tx(D, 0, fee=8 * GWEI)
    pool.add(d0)
    assert a0.hash not in pool
    assert len(pool) == 3
    with pytest.raises(TxPoolFull):
        pool.add(make_tx(A, 0, fee=6 * GWEI))  # not above the cheapest (b0, 6 gwei)
    with pytest.raises(TxPoolFull):
        pool.add(make_tx(A, 0, fee=2 * GWEI))
    assert {tx.hash for tx in pool.pending_txs()} == {b0.hash, c0.hash, d0.hash}
    pool._check_invariants()


def test_global_cap_evicts_sender_tail_never_opening_a_gap() -> None:
    pool, _ = new_pool(global_slots=3)
    a0 = make_tx(A, 0, fee=2 * GWEI)  # cheapest, but a1 depends on it
    a1 = make_tx(A, 1, fee=9 * GWEI)
    b0 = make_tx(B, 0, fee=4 * GWEI)
    for tx in (a0, a1, b0):
        pool.add(tx)
    pool.add(make_tx(C, 0, fee=5 * GWEI))
    assert b0.hash not in pool  # tails: a1 (9), b0 (4) -> b0 goes
    assert a0.hash in pool and a1.hash in pool
    pool._check_invariants()


def test_global_cap_prefers_queued_victim_at_equal_price() -> None:
    pool, _ = new_pool(global_slots=3)
    a0 = make_tx(A, 0, fee=3 * GWEI)
    b5 = make_tx(B, 5, fee=3 * GWEI)  # queued
    c0 = make_tx(C, 0, fee=3 * GWEI)
    for tx in (a0, b5, c0):
        pool.add(tx)
    pool.add(make_tx(D, 0, fee=4 * GWEI))
    assert b5.hash not in pool
    assert a0.hash in pool and c0.hash in pool


def test_global_cap_future_tx_cannot_push_out_pending() -> None:
    pool, _ = new_pool(global_slots=2)
    pool.add(make_tx(A, 0, fee=3 * GWEI))
    pool.add(make_tx(B, 0, fee=3 * GWEI))
    with pytest.raises(FutureReplacePending) as exc:
        pool.add(make_tx(C, 4, fee=50 * GWEI))
    assert isinstance(exc.value, TxPoolFull)
    assert str(exc.value) == "future transaction tries to replace pending"
    pool.add(make_tx(C, 0, fee=50 * GWEI))  # a pending one may
    assert len(pool) == 2


def test_global_cap_never_evicts_own_earlier_nonce() -> None:
    pool, _ = new_pool(global_slots=2)
    pool.add(make_tx(A, 0, fee=2 * GWEI))
    pool.add(make_tx(B, 0, fee=3 * GWEI))
    with pytest.raises(TxPoolFull):
        pool.add(make_tx(A, 1, fee=9 * GWEI))


def test_global_cap_fills_gap_by_evicting_own_queued_tail() -> None:
    pool, _ = new_pool(global_slots=2)
    pool.add(make_tx(B, 0, fee=5 * GWEI))
    a3 = make_tx(A, 3, fee=1 * GWEI)
    pool.add(a3)
    a0 = make_tx(A, 0, fee=9 * GWEI)
    pool.add(a0)
    assert a3.hash not in pool
    assert pool.pending_nonce(A) == 1


# ---------------------------------------------------------------- free transactions


def test_free_plain_transfer_within_quota_then_underpriced() -> None:
    pool, state = new_pool(free_tx_quota=3)
    state.free_used[A] = 1
    pool.add(make_tx(A, 0, fee=0, value=5))
    pool.add(make_tx(A, 1, fee=GWEI - 1, tx_type=LEGACY_TX_TYPE))
    with pytest.raises(Underpriced) as exc:
        pool.add(make_tx(A, 2, fee=0))
    assert str(exc.value).startswith("transaction underpriced")
    assert "quota" in str(exc.value)
    pool.add(make_tx(A, 2, fee=GWEI))  # paying txs have no quota
    pool.add(make_tx(B, 0, fee=0))  # quota is per sender
    assert len(pool) == 4


def test_free_quota_frees_up_when_state_window_resets() -> None:
    pool, state = new_pool(free_tx_quota=1)
    state.free_used[A] = 1
    with pytest.raises(Underpriced):
        pool.add(make_tx(A, 0, fee=0))
    state.free_used[A] = 0
    pool.add(make_tx(A, 0, fee=0))


def test_free_tx_replacement_does_not_count_the_replaced_tx() -> None:
    pool, _ = new_pool(free_tx_quota=1)
    pool.add(make_tx(A, 0, fee=GWEI // 10))
    pool.add(make_tx(A, 0, fee=GWEI // 5))
    with pytest.raises(Underpriced):
        pool.add(make_tx(A, 1, fee=GWEI // 2))
    pool._check_invariants()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to": CONTRACT},
        {"data": b"\x01"},
        {"data": b"\x00"},
        {"to": None, "data": b"\x60\x00", "gas": 60_000},
        {"tx_type": SET_CODE_TX_TYPE, "gas": 50_000},
        {"to": (4).to_bytes(20, "big")},  # a precompile: reserved range below 0x10000
        {"access_list": ((RECIPIENT, ()),), "gas": 30_000},
    ],
    ids=[
        "to-contract",
        "with-data",
        "zero-byte-data",
        "create",
        "set-code",
        "precompile",
        "access-list",
    ],
)
def test_free_tx_that_is_not_a_plain_transfer_is_underpriced(kwargs: dict) -> None:
    pool, _ = new_pool(free_tx_quota=100)
    kwargs = {"gas": 30_000, **kwargs}
    if kwargs.get("tx_type") == SET_CODE_TX_TYPE:
        auth = Authorization(18, RECIPIENT, 0, 0, 1, 1, addr(0x77))
        kwargs["authorizations"] = (auth,)
    with pytest.raises(Underpriced) as exc:
        pool.add(make_tx(A, 0, fee=0, **kwargs))
    assert "not a plain transfer" in str(exc.value)
    pool.add(make_tx(A, 0, fee=GWEI, **kwargs))  # the same tx paying the minimum is fine


def test_free_threshold_uses_effective_price() -> None:
    pool, _ = new_pool(free_tx_quota=0)
    with pytest.raises(Underpriced):  # fee cap high, but it would pay a 0 tip
        pool.add(make_tx(A, 0, fee=10 * GWEI, tip=0))
    pool.add(make_tx(A, 0, fee=10 * GWEI, tip=GWEI))


def test_free_txs_leaving_pool_release_quota() -> None:
    pool, state = new_pool(free_tx_quota=1)
    t0 = make_tx(A, 0, fee=0)
    pool.add(t0)
    with pytest.raises(Underpriced):
        pool.add(make_tx(A, 1, fee=0))
    state.nonces[A] = 1
    pool.remove_included([t0])
    state.free_used[A] = 1  # now counted by the chain instead
    with pytest.raises(Underpriced):
        pool.add(make_tx(A, 1, fee=0))
    state.free_used[A] = 0  # new window
    pool.add(make_tx(A, 1, fee=0))


# ---------------------------------------------------------------- misc API


def test_get_contains_len() -> None:
    pool, _ = new_pool()
    tx = make_tx()
    assert pool.get(tx.hash) is None
    assert tx.hash not in pool
    pool.add(tx)
    assert pool.get(tx.hash) is tx
    assert tx.hash in pool
    assert len(pool) == 1


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        MempoolConfig(global_slots=0)
    with pytest.raises(ValueError):
        MempoolConfig(min_gas_price=-1)
    cfg = MempoolConfig()
    assert (cfg.max_tx_size, cfg.global_slots, cfg.account_slots) == (131072, 100_000, 5_000)
    assert cfg.price_bump_percent == 10 and cfg.min_gas_price == GWEI


def test_concurrent_adds_and_selects_keep_invariants() -> None:
    pool, _ = new_pool(global_slots=500)
    senders = [addr(0x1000 + i) for i in range(8)]
    errors: list[BaseException] = []

    def producer(sender: bytes) -> None:
        try:
            for n in range(100):
                with contextlib.suppress(MempoolError):
                    pool.add(make_tx(sender, n, fee=(1 + n % 7) * GWEI))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for _ in range(20):
        pool.select(1_000_000)
    for t in threads:
        t.join()
    assert not errors
    assert len(pool) == 500
    pool._check_invariants()


# ---------------------------------------------------------------- performance


def test_20k_adds_and_select_are_fast() -> None:
    pool, _ = new_pool(global_slots=100_000)
    txs = [
        make_tx(addr(0x10000 + i // 4), i % 4, fee=(1 + (i * 7919) % 97) * GWEI)
        for i in range(20_000)
    ]
    start = time.perf_counter()
    for tx in txs:
        pool.add(tx)
    added = time.perf_counter() - start
    start = time.perf_counter()
    picked = pool.select(10**12)
    selected = time.perf_counter() - start
    assert len(picked) == 20_000
    # Generous bounds so loaded CI machines pass; typical figures are far lower.
    assert added < 2.0, f"20k adds took {added:.3f}s"
    assert selected < 0.5, f"select of 20k took {selected:.3f}s"


# ---------------------------------------------------------------- property test

SENDERS = [addr(0x100 + i) for i in range(4)]
POOR = SENDERS[3]
PRICES = [0, GWEI // 2, GWEI, 2 * GWEI, 3 * GWEI, 5 * GWEI]


class PoolMachine(RuleBasedStateMachine):
    """Random add / mine / external-nonce sequences keep the pool's invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.state = FakeState(balances={POOR: 21_000 * 3 * GWEI})
        cfg = MempoolConfig(free_tx_quota=2, global_slots=7, account_slots=4)
        self.pool = Mempool(cfg, self.state)
        self.added: list[Transaction] = []
        self.arrival: dict[bytes, int] = {}
        self.clock = itertools.count()
        self.notified: list[Transaction] = []
        self.pool.on_added = self.notified.append

    @rule(
        sender=st.sampled_from(SENDERS),
        offset=st.integers(min_value=-1, max_value=6),
        fee=st.sampled_from(PRICES),
        tip_part=st.sampled_from([1, 2]),
        gas=st.sampled_from([21_000, 50_000, 200_000]),
    )
    def add(self, sender: bytes, offset: int, fee: int, tip_part: int, gas: int) -> None:
        nonce = max(0, self.state.get_nonce(sender) + offset)
        tx = make_tx(sender, nonce, fee=fee, tip=fee // tip_part, gas=gas)
        before = self._by_sender()
        # If the state moved on without a reset, add() first drops the sender's stale txs.
        stale = {n for n in before.get(sender, {}) if n < self.state.get_nonce(sender)}
        caught_up = {s: dict(txs) for s, txs in before.items()}
        for n in stale:
            del caught_up[sender][n]
        caught_up = {s: txs for s, txs in caught_up.items() if txs}
        try:
            self.pool.add(tx)
        except MempoolError:
            assert tx.hash not in self.pool
            assert self._by_sender() in (before, caught_up)
            return
        before = caught_up
        assert self.pool.get(tx.hash) is tx
        self.added.append(tx)
        self.arrival[tx.hash] = next(self.clock)
        after = self._by_sender()
        replaced = before.get(sender, {}).get(nonce)
        gone = [
            old
            for txs in before.values()
            for old in txs.values()
            if old.hash not in self.pool and old is not replaced
        ]
        if sum(map(len, before.values())) < self.pool.config.global_slots:
            assert gone == []
        assert len(gone) <= 1
        if gone:  # evicted to make room: the cheapest sender tail, cheaper than tx
            victim = gone[0]
            tails = [max(txs.values(), key=lambda t: t.nonce) for txs in before.values()]
            assert victim in tails
            price = effective_gas_price
            assert price(victim) == min(map(price, tails)) < price(tx)
            assert all(n < victim.nonce for n in after.get(victim.sender, {}) if n != nonce)

    def _by_sender(self) -> dict[bytes, dict[int, Transaction]]:
        content = self.pool.content()
        merged: dict[bytes, dict[int, Transaction]] = {}
        for kind in ("pending", "queued"):
            for sender, txs in content[kind].items():
                merged.setdefault(sender, {}).update(txs)
        return merged

    @precondition(lambda self: self.added)
    @rule(data=st.data())
    def re_add(self, data: st.DataObject) -> None:
        """A pooled tx is "already known"; an evicted or dropped one may come back."""
        tx = data.draw(st.sampled_from(self.added))
        if tx.hash in self.pool:
            with pytest.raises(AlreadyKnown):
                self.pool.add(tx)
            return
        try:
            self.pool.add(tx)
        except MempoolError:
            assert tx.hash not in self.pool
        else:
            self.arrival[tx.hash] = next(self.clock)

    @rule(
        gas_limit=st.sampled_from([21_000, 100_000, 300_000, 10**9]),
        max_count=st.one_of(st.none(), st.integers(0, 5)),
        reset=st.booleans(),
    )
    def mine(self, gas_limit: int, max_count: int | None, reset: bool) -> None:
        block = self.pool.select(gas_limit, max_count)
        assert sum(tx.gas for tx in block) <= gas_limit
        assert max_count is None or len(block) <= max_count
        for tx in block:
            assert tx.nonce == self.state.get_nonce(tx.sender), "selected out of nonce order"
            self.state.nonces[tx.sender] = tx.nonce + 1
            if effective_gas_price(tx) < self.pool.config.min_gas_price:
                self.state.free_used[tx.sender] = self.state.free_txs_used(tx.sender) + 1
        self.pool.remove_included(block)
        if reset:
            self.pool.reset()
        assert all(tx.hash not in self.pool for tx in block)

    @rule(
        gas_limit=st.sampled_from([21_000, 71_000, 250_000, 10**9]),
        max_count=st.one_of(st.none(), st.integers(0, 6)),
    )
    def select_matches_reference(self, gas_limit: int, max_count: int | None) -> None:
        """select() equals a naive "best next tx of any sender" loop."""
        runs = {
            s: [txs[n] for n in sorted(txs)] for s, txs in self.pool.content()["pending"].items()
        }
        expected: list[Transaction] = []
        remaining = gas_limit
        while runs and (max_count is None or len(expected) < max_count) and remaining >= 21_000:
            sender = min(
                runs,
                key=lambda s: (-effective_gas_price(runs[s][0]), self.arrival[runs[s][0].hash]),
            )
            tx = runs[sender].pop(0)
            if tx.gas > remaining:
                del runs[sender]
                continue
            expected.append(tx)
            remaining -= tx.gas
            if not runs[sender]:
                del runs[sender]
        assert self.pool.select(gas_limit, max_count) == expected

    @rule(sender=st.sampled_from(SENDERS), k=st.integers(1, 3))
    def external_nonce_bump(self, sender: bytes, k: int) -> None:
        self.state.nonces[sender] = self.state.get_nonce(sender) + k
        self.pool.reset()

    @rule(sender=st.sampled_from(SENDERS), k=st.integers(1, 3), offset=st.integers(-1, 3))
    def external_nonce_bump_then_add(self, sender: bytes, k: int, offset: int) -> None:
        """No reset: the next add (accepted or not) must catch the sender up by itself."""
        self.state.nonces[sender] = self.state.get_nonce(sender) + k
        self.add(sender, offset, 2 * GWEI, 1, 21_000)

    @rule(sender=st.sampled_from(SENDERS), k=st.integers(1, 3))
    def external_nonce_bump_then_pending_nonce(self, sender: bytes, k: int) -> None:
        self.state.nonces[sender] = self.state.get_nonce(sender) + k
        self.pool.pending_nonce(sender)

    @rule()
    def new_free_window(self) -> None:
        self.state.free_used.clear()

    @invariant()
    def internal_consistency(self) -> None:
        self.pool._check_invariants()

    @invariant()
    def public_views_agree(self) -> None:
        pool, state = self.pool, self.state
        content = pool.content()
        status = pool.status()
        n_pending = sum(len(v) for v in content["pending"].values())
        n_queued = sum(len(v) for v in content["queued"].values())
        assert status == {"pending": n_pending, "queued": n_queued}
        assert len(pool) == n_pending + n_queued <= pool.config.global_slots
        seen: set[tuple[bytes, int]] = set()
        for kind in ("pending", "queued"):
            for sender, txs in content[kind].items():
                for nonce, tx in txs.items():
                    assert (sender, nonce) not in seen, "duplicate sender+nonce"
                    seen.add((sender, nonce))
                    assert tx.sender == sender and tx.nonce == nonce
                    assert nonce >= state.get_nonce(sender)
                    assert tx.hash in pool
        for sender in SENDERS:
            pend = sorted(content["pending"].get(sender, {}))
            base = state.get_nonce(sender)
            assert pend == list(range(base, base + len(pend))), "pending not contiguous"
            queued = content["queued"].get(sender, {})
            assert base + len(pend) not in queued, "queued tx should have been promoted"
            assert pool.pending_nonce(sender) == base + len(pend)
            free = sum(
                effective_gas_price(tx) < pool.config.min_gas_price
                for kind in ("pending", "queued")
                for tx in content[kind].get(sender, {}).values()
            )
            assert free <= pool.config.free_tx_quota
        pending_hashes = {tx.hash for tx in pool.pending_txs()}
        assert pending_hashes <= {tx.hash for tx in self.notified}


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
