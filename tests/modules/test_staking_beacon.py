"""The staking module's side of the random beacon: commitments, reveals, genesis, the draw."""

from __future__ import annotations

import pytest
from eth.exceptions import Revert
from eth_abi import decode
from test_staking_support import CMT, TEST_PARAMS, Chain, account

from cybermiles.chain.errors import GenesisError
from cybermiles.chain.genesis import GenesisValidator, parse_genesis
from cybermiles.consensus.beacon import GENESIS_BEACON, HashOnion, next_beacon, onion_seed
from cybermiles.modules import lifecycle as modules_lifecycle
from cybermiles.modules.addresses import STAKING
from cybermiles.modules.framework.block import BlockInfo
from cybermiles.modules.framework.module import event_topic
from cybermiles.modules.staking import beacon_commitments as bc
from cybermiles.modules.staking import lifecycle
from cybermiles.modules.staking.beacon import beacon_for
from cybermiles.modules.staking.beacon_commitments import (
    COMMIT_DELAY,
    ONION_LENGTH,
    BeaconError,
    advance_beacon,
    consume_reveal,
    expected_commitment,
)
from cybermiles.modules.staking.genesis import init_staking
from cybermiles.modules.staking.module import CALL_GAS
from cybermiles.modules.staking.state import BeaconCommitment

A, B, NOBODY = account(1), account(2), account(50)
MAX = 1000 * CMT
ONION = HashOnion(onion_seed(b"\x07" * 32, 0), 40)
OTHER = HashOnion(onion_seed(b"\x07" * 32, 1), 40)


@pytest.fixture
def chain() -> Chain:
    c = Chain()
    c.declare(A, MAX)
    return c


def commit(chain: Chain, commitment: bytes, who: bytes = A) -> None:
    chain.call(who, "setBeaconCommitment", commitment)


def live_at(chain: Chain, height: int, who: bytes = A) -> bytes | None:
    return expected_commitment(chain.state, who, height)


# -- setBeaconCommitment
def test_commitment_is_live_after_the_delay(chain: Chain) -> None:
    h = chain.number
    computation = chain.call(A, "setBeaconCommitment", ONION.tip)
    assert computation.gas_used == CALL_GAS
    ((address, topics, data),) = computation.logs
    assert address == STAKING
    assert topics == [event_topic("BeaconCommitted(address,bytes32)"), int.from_bytes(A, "big")]
    assert decode(["bytes32"], data) == (ONION.tip,)
    assert chain.staking.beacon_commitment(A) == BeaconCommitment(
        b"", 0, ONION.tip, h + COMMIT_DELAY
    )
    assert live_at(chain, h) is None
    assert live_at(chain, h + COMMIT_DELAY - 1) is None
    assert live_at(chain, h + COMMIT_DELAY) == ONION.tip
    assert live_at(chain, h + 10 * COMMIT_DELAY) == ONION.tip


def test_only_candidates_commit(chain: Chain) -> None:
    with pytest.raises(Revert, match="is not a candidate"):
        commit(chain, ONION.tip, NOBODY)
    assert chain.staking.beacon_commitment(NOBODY) is None


def test_reveals_advance_the_commitment(chain: Chain) -> None:
    commit(chain, ONION.tip)
    h = chain.number + COMMIT_DELAY
    for step in range(1, 6):
        assert live_at(chain, h + step) == ONION.reveal(step - 1)
        assert consume_reveal(chain.state, A, ONION.reveal(step), h + step)
    record = chain.staking.beacon_commitment(A)
    assert record == BeaconCommitment(ONION.reveal(5), ONION_LENGTH - 5, b"", 0)


def test_wrong_reused_early_and_foreign_reveals_are_refused(chain: Chain) -> None:
    commit(chain, ONION.tip)
    h = chain.number + COMMIT_DELAY
    assert not consume_reveal(chain.state, A, ONION.reveal(1), h - 1)  # not live yet
    assert consume_reveal(chain.state, A, ONION.reveal(1), h)
    storage = dict(chain.state.storage)
    assert not consume_reveal(chain.state, A, ONION.reveal(1), h + 1)  # reused
    assert not consume_reveal(chain.state, A, ONION.reveal(3), h + 1)  # skipped
    assert not consume_reveal(chain.state, A, OTHER.reveal(2), h + 1)
    assert not consume_reveal(chain.state, B, ONION.reveal(2), h + 1)  # B has no commitment
    assert chain.state.storage == storage  # refusals write nothing
    assert consume_reveal(chain.state, A, ONION.reveal(2), h + 1)


def test_advance_beacon_checks_the_reveal(chain: Chain) -> None:
    commit(chain, ONION.tip)
    h = chain.number + COMMIT_DELAY
    prev = GENESIS_BEACON
    # before the commitment is live: the fallback step, and a reveal is refused
    with pytest.raises(BeaconError, match="without a commitment"):
        advance_beacon(chain.state, prev, A, ONION.reveal(1), h - 1)
    assert advance_beacon(chain.state, prev, A, None, h - 1) == next_beacon(prev, None, A, h - 1)
    # live: the reveal is required and must be the right one
    with pytest.raises(BeaconError, match="missing"):
        advance_beacon(chain.state, prev, A, None, h)
    with pytest.raises(BeaconError, match="does not open"):
        advance_beacon(chain.state, prev, A, ONION.reveal(2), h)
    value = advance_beacon(chain.state, prev, A, ONION.reveal(1), h)
    assert value == next_beacon(prev, ONION.reveal(1), A, h)
    assert live_at(chain, h + 1) == ONION.reveal(1)
    # an uncommitted proposer: the deterministic fallback
    assert advance_beacon(chain.state, value, B, None, h + 1) == next_beacon(value, None, B, h + 1)


def test_exhausted_onion_falls_back(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bc, "ONION_LENGTH", 3)
    onion = HashOnion(onion_seed(b"\x08" * 32, 0), 3)
    commit(chain, onion.tip)
    h = chain.number + COMMIT_DELAY
    for step in (1, 2, 3):
        advance_beacon(chain.state, GENESIS_BEACON, A, onion.reveal(step), h + step)
    assert live_at(chain, h + 4) is None
    assert chain.staking.beacon_commitment(A) is None  # nothing live or pending: deleted
    with pytest.raises(BeaconError, match="without a commitment"):
        advance_beacon(chain.state, GENESIS_BEACON, A, b"\x42" * 32, h + 4)
    fallback = advance_beacon(chain.state, GENESIS_BEACON, A, None, h + 4)
    assert fallback == next_beacon(GENESIS_BEACON, None, A, h + 4)


def test_recommitting_replaces_the_onion_after_the_delay(chain: Chain) -> None:
    commit(chain, ONION.tip)
    start = chain.number + COMMIT_DELAY
    assert consume_reveal(chain.state, A, ONION.reveal(1), start)
    chain.state.execution_context.block_number = start + 10
    commit(chain, OTHER.tip)
    switch = start + 10 + COMMIT_DELAY
    # the old onion stays live until the switch
    assert consume_reveal(chain.state, A, ONION.reveal(2), start + 20)
    assert live_at(chain, switch - 1) == ONION.reveal(2)
    assert live_at(chain, switch) == OTHER.tip
    assert not consume_reveal(chain.state, A, ONION.reveal(3), switch)
    assert consume_reveal(chain.state, A, OTHER.reveal(1), switch)
    record = chain.staking.beacon_commitment(A)
    assert record == BeaconCommitment(OTHER.reveal(1), ONION_LENGTH - 1, b"", 0)


def test_a_second_commit_replaces_the_pending_one(chain: Chain) -> None:
    commit(chain, ONION.tip)
    chain.state.execution_context.block_number += 5
    commit(chain, OTHER.tip)
    assert live_at(chain, chain.number + COMMIT_DELAY - 1) is None
    assert live_at(chain, chain.number + COMMIT_DELAY) == OTHER.tip


def test_withdrawing_the_commitment(chain: Chain) -> None:
    with pytest.raises(Revert, match="no beacon commitment to withdraw"):
        commit(chain, bytes(32))
    commit(chain, ONION.tip)
    live = chain.number + COMMIT_DELAY
    chain.state.execution_context.block_number = live + 1
    commit(chain, bytes(32))
    assert live_at(chain, live + COMMIT_DELAY) == ONION.tip  # still live during the delay
    assert live_at(chain, live + 1 + COMMIT_DELAY) is None
    chain.state.execution_context.block_number = live + 1 + COMMIT_DELAY
    with pytest.raises(Revert, match="no beacon commitment to withdraw"):
        commit(chain, bytes(32))


def test_withdrawing_the_candidacy_drops_the_commitment(chain: Chain) -> None:
    commit(chain, ONION.tip)
    chain.call(A, "withdrawCandidacy")
    assert chain.staking.beacon_commitment(A) is None


# -- genesis
def genesis_doc(commitment: object = None) -> dict[str, object]:
    validator: dict[str, object] = {
        "address": "0x" + A.hex(),
        "pub_key": "0x" + ("11" * 32),
        "max_amount": str(MAX),
    }
    if commitment is not None:
        validator["beacon_commitment"] = commitment
    return {"chain_id": 7, "validators": [validator]}


def test_genesis_accepts_an_optional_beacon_commitment() -> None:
    genesis = parse_genesis(genesis_doc("0x" + ONION.tip.hex()))
    (validator,) = genesis.validators
    assert validator.beacon_commitment == ONION.tip
    assert genesis.to_json()["validators"][0]["beacon_commitment"] == "0x" + ONION.tip.hex()
    assert parse_genesis(genesis.to_json()) == genesis
    plain = parse_genesis(genesis_doc())
    assert plain.validators[0].beacon_commitment == b""
    assert "beacon_commitment" not in plain.to_json()["validators"][0]


@pytest.mark.parametrize("bad", ["0x1234", "0x" + "00" * 32, "nothex", 5])
def test_genesis_rejects_bad_beacon_commitments(bad: object) -> None:
    with pytest.raises(GenesisError, match=r"validators\[0\]\.beacon_commitment"):
        parse_genesis(genesis_doc(bad))


def test_genesis_commitments_are_live_from_block_1() -> None:
    chain = Chain()
    validators = (
        GenesisValidator(A, b"\x11" * 32, MAX, 0, beacon_commitment=ONION.tip),
        GenesisValidator(B, b"\x12" * 32, MAX, 0),
    )
    init_staking(chain.state, validators, chain.params, 0)
    assert chain.staking.beacon_commitment(A) == BeaconCommitment(ONION.tip, ONION_LENGTH, b"", 0)
    assert live_at(chain, 1) == ONION.tip
    assert live_at(chain, 1, B) is None
    with pytest.raises(ValueError, match="beacon_commitment must be 32 non-zero bytes"):
        init_staking(
            Chain().state,
            (GenesisValidator(A, b"\x11" * 32, MAX, 0, beacon_commitment=b"\x01" * 31),),
            TEST_PARAMS,
            0,
        )


# -- the backup draw
def draw_chain() -> Chain:
    """Six candidates of distinct power: 3 validators, 2 backups drawn from the other 3."""
    chain = Chain()
    for n in range(1, 7):
        chain.declare(account(n), 100 * n * CMT)
    return chain


def expected_sets(beacon: bytes) -> tuple[list[bytes], list[bytes]]:
    reference = draw_chain()
    lifecycle.elect(reference.state, reference.params, beacon)
    return reference.staking.validators(), reference.staking.backups()


def end_epoch_block(chain: Chain, beacon: bytes, parent_hash: bytes) -> None:
    chain.state.execution_context.block_number = TEST_PARAMS.epoch_blocks
    assert lifecycle.should_elect(chain.number, chain.params)
    info = BlockInfo(chain.number, 0, parent_hash, 0, beacon=beacon)
    modules_lifecycle.end_block(chain.state, info)


def test_the_draw_uses_the_blocks_beacon_when_given() -> None:
    parent = b"\x33" * 32
    draws = set()
    for i in range(8):
        beacon = next_beacon(GENESIS_BEACON, None, account(i), 1 + i)
        chain = draw_chain()
        end_epoch_block(chain, beacon, parent)
        sets = (chain.staking.validators(), chain.staking.backups())
        assert sets == expected_sets(beacon)
        draws.add(tuple(sets[1]))
    assert len(draws) > 1  # the beacon, not the (fixed) parent hash, decides the backups


def test_end_block_passes_the_beacon_to_the_election(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []
    monkeypatch.setattr(
        modules_lifecycle.staking, "elect", lambda _b, _p, beacon: seen.append(beacon)
    )
    parent = b"\x33" * 32
    end_epoch_block(draw_chain(), b"\x44" * 32, parent)
    end_epoch_block(draw_chain(), b"", parent)
    assert seen == [b"\x44" * 32, beacon_for(parent)]


def test_the_draw_falls_back_to_the_parent_hash_placeholder() -> None:
    parent = b"\x33" * 32
    chain = draw_chain()
    end_epoch_block(chain, b"", parent)
    assert (chain.staking.validators(), chain.staking.backups()) == expected_sets(
        beacon_for(parent)
    )
    assert BlockInfo(1, 0, parent, 0).beacon == b""
