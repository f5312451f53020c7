"""The random beacon's pure pieces: hash onions, reveals and the beacon step (docs/beacon.md)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sha3 import keccak_256

from cybermiles.consensus import beacon as beacon_module
from cybermiles.consensus.beacon import (
    CHECKPOINT_INTERVAL,
    DEFAULT_ONION_LENGTH,
    GENESIS_BEACON,
    HashOnion,
    next_beacon,
    onion_seed,
    verify_reveal,
)
from cybermiles.crypto.keccak import keccak256

KEY = bytes(range(32))
SEED = onion_seed(KEY, 0)
PROPOSER = b"\xaa" * 20


def naive_layers(seed: bytes, length: int) -> list[bytes]:
    layers = [seed]
    for _ in range(length):
        layers.append(keccak256(layers[-1]))
    return layers


# -- seeds
def test_onion_seed_is_the_documented_hash() -> None:
    assert keccak256(b"cybermiles/beacon-seed" + KEY + (0).to_bytes(8, "big")) == SEED
    assert onion_seed(KEY, 1) == keccak256(b"cybermiles/beacon-seed" + KEY + b"\0" * 7 + b"\1")
    assert len({onion_seed(KEY, i) for i in range(50)}) == 50
    assert onion_seed(b"\x01" * 32, 0) != SEED


def test_onion_seed_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        onion_seed(KEY[:31], 0)
    with pytest.raises(ValueError, match="onion index"):
        onion_seed(KEY, -1)
    with pytest.raises(ValueError, match="onion index"):
        onion_seed(KEY, 2**64)


def test_defaults() -> None:
    assert DEFAULT_ONION_LENGTH == 2**20
    assert CHECKPOINT_INTERVAL == 1024
    assert keccak256(b"cybermiles/genesis-beacon") == GENESIS_BEACON


# -- onions
@pytest.mark.parametrize("length", [1, 2, 1023, 1024, 1025, 2048, 3000])
def test_onion_layers_match_the_naive_chain(length: int) -> None:
    onion = HashOnion(SEED, length)
    layers = naive_layers(SEED, length)
    assert onion.tip == layers[-1] == onion.reveal(0)
    assert onion.reveal(length) == SEED
    for step in range(length + 1):
        assert onion.reveal(step) == layers[length - step]
    # out of order too (the segment cache must not matter)
    for step in (length, 0, length // 2, 1, length - 1, length // 3):
        assert onion.reveal(step) == layers[length - step]


def test_reveals_verify_in_sequence_and_advance_the_commitment() -> None:
    onion = HashOnion(SEED, 2100)
    commitment = onion.tip
    for step in range(1, 2101):
        reveal = onion.reveal(step)
        assert verify_reveal(commitment, reveal)
        commitment = reveal
    assert commitment == SEED


def test_wrong_and_reused_reveals_fail() -> None:
    onion = HashOnion(SEED, 50)
    commitment = onion.reveal(10)
    assert verify_reveal(commitment, onion.reveal(11))
    assert not verify_reveal(commitment, commitment)  # reusing the last reveal
    assert not verify_reveal(commitment, onion.reveal(10 - 1))  # an older one
    assert not verify_reveal(commitment, onion.reveal(12))  # skipping a step
    assert not verify_reveal(commitment, HashOnion(onion_seed(KEY, 1), 50).reveal(40))
    assert not verify_reveal(commitment, bytes(32))
    flipped = bytearray(onion.reveal(11))
    flipped[0] ^= 1
    assert not verify_reveal(commitment, bytes(flipped))


def test_verify_reveal_needs_32_byte_values() -> None:
    onion = HashOnion(SEED, 3)
    assert not verify_reveal(onion.tip, onion.reveal(1) + b"\0")
    assert not verify_reveal(onion.tip, onion.reveal(1)[:31])
    assert not verify_reveal(onion.tip[:31], onion.reveal(1))
    assert not verify_reveal(b"", b"")


def test_onions_are_deterministic() -> None:
    assert HashOnion(SEED, 3000).tip == HashOnion(SEED, 3000).tip
    assert HashOnion(SEED, 3000).reveal(1234) == HashOnion(SEED, 3000).reveal(1234)
    assert HashOnion(SEED, 3000).tip != HashOnion(SEED, 2999).tip
    assert HashOnion(SEED, 3000).reveal(1) == HashOnion(SEED, 2999).tip


def test_exhaustion_after_length_reveals() -> None:
    onion = HashOnion(SEED, 5)
    assert onion.reveal(5) == SEED
    with pytest.raises(IndexError):
        onion.reveal(6)  # no preimage of the seed is known: the onion is used up
    with pytest.raises(IndexError):
        onion.reveal(-1)
    with pytest.raises(IndexError):
        onion.layer(6)


def test_onion_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        HashOnion(b"short", 4)
    with pytest.raises(ValueError, match="positive"):
        HashOnion(SEED, 0)


def test_step_of_finds_where_a_commitment_is() -> None:
    onion = HashOnion(SEED, 1500)
    assert onion.step_of(onion.tip) == 0
    assert onion.step_of(onion.reveal(777)) == 777
    assert onion.step_of(SEED) == 1500
    assert onion.step_of(b"\x01" * 32) is None


class _CountingKeccak:
    """Stands in for ``sha3.keccak_256`` in the beacon module, counting the hashes."""

    calls = 0

    def __init__(self, data: bytes) -> None:
        type(self).calls += 1
        self._digest = keccak_256(data).digest()

    def digest(self) -> bytes:
        return self._digest


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> type[_CountingKeccak]:
    _CountingKeccak.calls = 0
    monkeypatch.setattr(beacon_module, "keccak_256", _CountingKeccak)
    return _CountingKeccak


def test_building_costs_length_hashes_and_a_reveal_at_most_1023(
    counting: type[_CountingKeccak],
) -> None:
    length = 5 * CHECKPOINT_INTERVAL + 300
    onion = HashOnion(SEED, length)
    assert counting.calls == length
    assert len(onion._checkpoints) == length // CHECKPOINT_INTERVAL + 1
    for step in (1, 299, 300, 301, 1500, length - 1, length, 0, 4097):
        fresh = HashOnion.__new__(HashOnion)
        for name in HashOnion.__slots__:
            setattr(fresh, name, getattr(onion, name))
        fresh._segment_index, fresh._segment = -1, []  # nothing cached
        counting.calls = 0
        assert fresh.reveal(step) == naive_layers(SEED, length)[length - step]
        assert counting.calls <= CHECKPOINT_INTERVAL - 1, step


def test_sequential_reveals_cost_about_one_hash_each(counting: type[_CountingKeccak]) -> None:
    length = 4 * CHECKPOINT_INTERVAL
    onion = HashOnion(SEED, length)
    counting.calls = 0
    for step in range(1, length + 1):
        onion.reveal(step)
    assert counting.calls <= length  # each segment is expanded once


# -- the beacon step
def test_next_beacon_with_a_reveal() -> None:
    onion = HashOnion(SEED, 3)
    reveal = onion.reveal(1)
    value = next_beacon(GENESIS_BEACON, reveal, PROPOSER, 1)
    assert value == keccak256(GENESIS_BEACON + reveal)
    assert value == next_beacon(GENESIS_BEACON, reveal, b"\xbb" * 20, 9)  # the reveal decides
    assert value != next_beacon(GENESIS_BEACON, onion.reveal(2), PROPOSER, 1)
    assert value != next_beacon(b"\x01" * 32, reveal, PROPOSER, 1)


def test_next_beacon_fallback_is_deterministic_and_distinct() -> None:
    value = next_beacon(GENESIS_BEACON, None, PROPOSER, 7)
    assert value == keccak256(GENESIS_BEACON + PROPOSER + (7).to_bytes(8, "big"))
    assert value == next_beacon(GENESIS_BEACON, None, PROPOSER, 7)
    assert value != next_beacon(GENESIS_BEACON, None, PROPOSER, 8)
    assert value != next_beacon(GENESIS_BEACON, None, b"\xbb" * 20, 7)
    assert value != next_beacon(b"\x01" * 32, None, PROPOSER, 7)


def test_next_beacon_rejects_malformed_input() -> None:
    reveal = HashOnion(SEED, 1).reveal(1)
    with pytest.raises(ValueError, match="previous beacon"):
        next_beacon(b"\0" * 31, reveal, PROPOSER, 1)
    with pytest.raises(ValueError, match="reveal"):
        next_beacon(GENESIS_BEACON, reveal + b"\0", PROPOSER, 1)
    with pytest.raises(ValueError, match="proposer"):
        next_beacon(GENESIS_BEACON, None, PROPOSER[:19], 1)
    with pytest.raises(ValueError, match="height"):
        next_beacon(GENESIS_BEACON, None, PROPOSER, 0)
    with pytest.raises(ValueError, match="height"):
        next_beacon(GENESIS_BEACON, None, PROPOSER, 2**64)


def run_chain(blocks: int, validators: int, committed: set[int], length: int) -> list[bytes]:
    """Beacons of a round-robin chain; validators in ``committed`` reveal from their onions."""
    owners = [bytes([0xB0 + v]) * 20 for v in range(validators)]
    onions = {v: HashOnion(onion_seed(bytes([v]) * 32, 0), length) for v in committed}
    commitments = {v: onions[v].tip for v in committed}
    steps = dict.fromkeys(committed, 0)
    beacons = [GENESIS_BEACON]
    for height in range(1, blocks + 1):
        v = height % validators
        reveal = None
        if v in committed and steps[v] < length:
            steps[v] += 1
            reveal = onions[v].reveal(steps[v])
            assert verify_reveal(commitments[v], reveal)
            commitments[v] = reveal
        beacons.append(next_beacon(beacons[-1], reveal, owners[v], height))
    return beacons


def test_a_chain_of_beacons_is_reproducible() -> None:
    first = run_chain(200, 4, {0, 1, 3}, 40)
    assert first == run_chain(200, 4, {0, 1, 3}, 40)
    assert len(set(first)) == len(first)
    # a different onion (or none) for one validator changes every later beacon
    other = run_chain(200, 4, {0, 1}, 40)
    assert first[:3] == other[:3] and all(a != b for a, b in zip(first[3:], other[3:], strict=True))


def test_beacons_look_uniform() -> None:
    """Bit balance over 4096 beacons (reveals, fallbacks and exhausted onions mixed): each of
    the 256 bit positions is set about half the time (binomial, sd 32: allow 6 sd), and so is
    the whole lot (sd 512: allow 6 sd); the byte values pass a loose chi-square test."""
    beacons = run_chain(4096, 5, {0, 1, 2}, 500)[1:]  # onions run out at ~2500
    n = len(beacons)
    counts = [0] * 256
    byte_counts = [0] * 256
    for value in beacons:
        number = int.from_bytes(value, "big")
        for bit in range(256):
            counts[bit] += (number >> bit) & 1
        for byte in value:
            byte_counts[byte] += 1
    for bit, ones in enumerate(counts):
        assert abs(ones - n / 2) < 6 * (n**0.5) / 2, (bit, ones)
    total = sum(counts)
    assert abs(total - 256 * n / 2) < 6 * ((256 * n) ** 0.5) / 2
    expected = 32 * n / 256
    chi2 = sum((c - expected) ** 2 / expected for c in byte_counts)
    assert chi2 < 400  # 255 degrees of freedom: mean 255, sd ~22.6


# -- properties on small onions
@settings(max_examples=60, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), length=st.integers(1, 2500), data=st.data())
def test_every_reveal_opens_the_previous_one(seed: bytes, length: int, data: Any) -> None:
    onion = HashOnion(seed, length)
    step = data.draw(st.integers(1, length))
    assert verify_reveal(onion.reveal(step - 1), onion.reveal(step))
    assert keccak256(onion.reveal(step)) == onion.reveal(step - 1)


@settings(max_examples=60, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), length=st.integers(2, 300), data=st.data())
def test_only_the_next_layer_opens_a_commitment(seed: bytes, length: int, data: Any) -> None:
    onion = HashOnion(seed, length)
    at = data.draw(st.integers(0, length - 1))
    other = data.draw(st.integers(0, length).filter(lambda s: s != at + 1))
    assert not verify_reveal(onion.reveal(at), onion.reveal(other))


@settings(max_examples=100, deadline=None)
@given(
    prev=st.binary(min_size=32, max_size=32),
    reveal=st.none() | st.binary(min_size=32, max_size=32),
    proposer=st.binary(min_size=20, max_size=20),
    height=st.integers(1, 2**64 - 1),
)
def test_next_beacon_is_a_pure_32_byte_function(
    prev: bytes, reveal: bytes | None, proposer: bytes, height: int
) -> None:
    value = next_beacon(prev, reveal, proposer, height)
    assert len(value) == 32
    assert value == next_beacon(prev, reveal, proposer, height)
    if reveal is not None:  # the two forms hash inputs of different lengths
        assert value != next_beacon(prev, None, proposer, height)
