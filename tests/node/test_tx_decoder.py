"""TxDecoder: batches decoded in a worker process give exactly what decoding in the node gives."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account

from cybermiles.chain.errors import InvalidTransaction
from cybermiles.chain.transactions import Transaction, decode_transaction
from cybermiles.node import tx_decoder
from cybermiles.node.tx_decoder import TxDecoder, decode_all

CHAIN_ID = 1234
KEYS = [Account.from_key(bytes([i + 1]) * 32) for i in range(4)]


def signed(key: Any, nonce: int, **fields: Any) -> bytes:
    tx = {
        "chainId": CHAIN_ID,
        "nonce": nonce,
        "to": bytes.fromhex("ab" * 20),
        "value": nonce + 1,
        "gas": 21_000,
        "maxFeePerGas": 2 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    return bytes(key.sign_transaction(tx | fields).raw_transaction)


def mixed_batch() -> list[bytes]:
    """Valid EIP-1559 and legacy transactions with every kind of refusal among them."""
    good = [signed(key, n) for n in range(5) for key in KEYS]
    legacy_fields = {"chainId": CHAIN_ID, "nonce": 9, "to": bytes.fromhex("cd" * 20)}
    legacy_fields |= {"value": 1, "gas": 21_000, "gasPrice": 10**9}
    legacy = bytes(KEYS[0].sign_transaction(legacy_fields).raw_transaction)
    assert good[0][-33] == 0xA0  # s is the last field, 32 bytes long
    return [
        *good,
        legacy,
        signed(KEYS[1], 0, chainId=CHAIN_ID + 1),  # another chain
        good[0][:-32] + b"\xff" * 32,  # s out of range
        b"\xc3\x01\x02\x03",  # bad RLP
        b"\x12\x34",  # unknown type
        b"",
    ]


def outcome(result: Transaction | InvalidTransaction) -> Any:
    return (type(result), str(result)) if isinstance(result, InvalidTransaction) else result


@pytest.fixture
def decoder() -> Iterator[TxDecoder]:
    d = TxDecoder(CHAIN_ID, min_batch=4)
    assert d.wait_ready(60)
    yield d
    d.close()


def test_worker_results_equal_decoding_in_process(decoder: TxDecoder) -> None:
    raws = mixed_batch()
    expected = decode_all(raws, CHAIN_ID)
    assert sum(isinstance(r, InvalidTransaction) for r in expected) == 5
    results = decoder.decode_many(raws)
    assert decoder._pool is not None, "a batch this size goes to the worker"
    assert [outcome(r) for r in results] == [outcome(r) for r in expected]
    for raw, result in zip(raws, results, strict=True):
        if isinstance(result, Transaction):
            assert result.sender == bytes.fromhex(Account.recover_transaction(raw)[2:])


def test_small_batches_and_a_starting_worker_decode_in_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoder = TxDecoder(CHAIN_ID, min_batch=4)
    try:
        raws = mixed_batch()
        assert decoder.decode_many(raws[:3]) == decode_all(raws[:3], CHAIN_ID)
        assert decoder._pool is None
        expected = [outcome(r) for r in decode_all(raws, CHAIN_ID)]
        calls: list[bytes] = []
        real = tx_decoder.decode_transaction

        def counted(raw: bytes, chain_id: int) -> Transaction:
            calls.append(raw)  # decoding in this process (the worker has its own module)
            return real(raw, chain_id)

        monkeypatch.setattr(tx_decoder, "decode_transaction", counted)
        assert [outcome(r) for r in decoder.decode_many(raws)] == expected
        assert decoder._pool is not None, "the first large batch starts the worker"
        assert calls == raws, "and is decoded here while the worker starts"
        assert decoder.wait_ready(60)
        assert [outcome(r) for r in decoder.decode_many(raws)] == expected
        assert calls == raws, "once started, the worker decodes"
    finally:
        decoder.close()


def test_prepared_results_serve_decode_in_the_same_thread_only(
    decoder: TxDecoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    raws = mixed_batch()
    with decoder.prepared(raws):
        # From here on, decoding in this process fails: only prepared results can answer.
        def refuse(raw: bytes, chain_id: int) -> Transaction:
            raise AssertionError("decoded in the node process")

        monkeypatch.setattr(tx_decoder, "decode_transaction", refuse)
        assert decoder.decode(raws[0]) == decode_transaction(raws[0], CHAIN_ID)
        with pytest.raises(InvalidTransaction, match="invalid chain id for signer"):
            decoder.decode(raws[-5])

        elsewhere: list[BaseException] = []

        def other_thread() -> None:
            try:
                decoder.decode(raws[1])
            except BaseException as exc:
                elsewhere.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert isinstance(elsewhere[0], AssertionError), "another thread saw this batch"
        assert decoder.decode(raws[0]) == decode_transaction(raws[0], CHAIN_ID)  # again
    with pytest.raises(AssertionError):  # and dropped when the batch ends
        decoder.decode(raws[2])


def test_a_dead_worker_falls_back_then_restarts(decoder: TxDecoder) -> None:
    raws = mixed_batch()
    expected = [outcome(r) for r in decode_all(raws, CHAIN_ID)]
    assert [outcome(r) for r in decoder.decode_many(raws)] == expected
    pool = decoder._pool
    assert pool is not None
    for pid in list(pool._processes):
        os.kill(pid, signal.SIGKILL)
    assert [outcome(r) for r in decoder.decode_many(raws)] == expected  # in the caller
    assert decoder.wait_ready(60)
    assert decoder._pool is not None and decoder._pool is not pool
    assert [outcome(r) for r in decoder.decode_many(raws)] == expected


def test_closed_decoder_decodes_in_the_caller(decoder: TxDecoder) -> None:
    raws = mixed_batch()
    decoder.decode_many(raws)
    decoder.close()
    assert decoder._pool is None
    assert [outcome(r) for r in decoder.decode_many(raws)] == [
        outcome(r) for r in decode_all(raws, CHAIN_ID)
    ]
    assert decoder._pool is None


def test_a_decoder_closed_under_a_batch_decodes_it_in_the_caller(decoder: TxDecoder) -> None:
    raws = mixed_batch()
    pool = decoder._worker()
    assert pool is not None
    pool.shutdown(wait=False)  # as close() from another thread between _worker() and submit
    decoder._worker = lambda: pool  # type: ignore[method-assign]
    assert [outcome(r) for r in decoder.decode_many(raws)] == [
        outcome(r) for r in decode_all(raws, CHAIN_ID)
    ]
