"""Decoding batches of raw transactions in a worker process.

Recovering a sender costs ~75 µs of libsecp256k1 and decoding ~20 µs of Python; in the node
process that work competes for the interpreter lock with block production and the RPC
handlers, and every recovery hands the lock over twice. :class:`TxDecoder` sends batches of at
least ``min_batch`` raw transactions to a worker process instead (started on first use, with
the ``spawn`` method since the node is multi-threaded) and gets back the decoded transactions,
which cost ~6 µs each to unpickle. Smaller batches, and every batch when the worker cannot run,
are decoded in the calling thread: the result is the same either way, :func:`decode_transaction`
of each raw transaction, or the :class:`InvalidTransaction` it raised.

:meth:`TxDecoder.prepared` makes a batch's results available to
:meth:`TxDecoder.decode` calls of the same thread (the RPC server decodes a JSON-RPC batch's
``eth_sendRawTransaction`` payloads together, then runs each request as usual).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from cybermiles.chain.errors import InvalidTransaction
from cybermiles.chain.transactions import Transaction, decode_transaction

log = logging.getLogger(__name__)

Decoded = Transaction | InvalidTransaction

MIN_BATCH = 16  # below this, the round trip to the worker costs more than it saves


def decode_all(raws: Sequence[bytes], chain_id: int) -> list[Decoded]:
    """Each raw transaction decoded (sender recovered), or the error that refused it."""
    out: list[Decoded] = []
    for raw in raws:
        try:
            out.append(decode_transaction(raw, chain_id))
        except InvalidTransaction as exc:
            out.append(exc)
    return out


class TxDecoder:
    """Decodes raw transactions for ``chain_id``, batches in a worker process."""

    def __init__(self, chain_id: int, *, workers: int = 1, min_batch: int = MIN_BATCH) -> None:
        self.chain_id = chain_id
        self.workers = workers
        self.min_batch = min_batch
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._local = threading.local()

    def decode_many(self, raws: Sequence[bytes]) -> list[Decoded]:
        """:func:`decode_all` of ``raws``, in the worker when the batch is large enough."""
        pool = self._worker() if len(raws) >= self.min_batch else None
        if pool is not None:
            try:
                return pool.submit(decode_all, list(raws), self.chain_id).result()
            except BrokenProcessPool:
                log.warning("transaction decoder process died; decoding in the node process")
                self._drop(pool)
        return decode_all(raws, self.chain_id)

    def decode(self, raw: bytes) -> Transaction:
        """``raw`` decoded (a prepared result if this thread has one); InvalidTransaction."""
        prepared: dict[bytes, Decoded] | None = getattr(self._local, "results", None)
        result = prepared.pop(raw, None) if prepared else None
        if result is None:
            return decode_transaction(raw, self.chain_id)
        if isinstance(result, InvalidTransaction):
            raise result
        return result

    @contextlib.contextmanager
    def prepared(self, raws: Sequence[bytes]) -> Iterator[None]:
        """Decode ``raws`` together now; :meth:`decode` in this thread takes the results until
        the block ends (results not taken are dropped)."""
        if len(raws) < self.min_batch:
            yield
            return
        previous = getattr(self._local, "results", None)
        self._local.results = dict(zip(raws, self.decode_many(raws), strict=True))
        try:
            yield
        finally:
            self._local.results = previous

    def close(self) -> None:
        """Stop the worker (if one started); later batches decode in the caller's thread."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _worker(self) -> ProcessPoolExecutor | None:
        if self.workers < 1:
            return None
        with self._lock:
            if self._pool is None and not self._closed:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
            return self._pool

    def _drop(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)
