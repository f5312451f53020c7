"""Decoding batches of raw transactions in a worker process.

Recovering a sender costs ~75 µs of libsecp256k1 and decoding ~20 µs of Python; in the node
process that work competes for the interpreter lock with block production and the RPC
handlers, and every recovery hands the lock over twice. :class:`TxDecoder` sends batches of at
least ``min_batch`` raw transactions to a worker process instead (started by :meth:`start` or
on first use, with the ``spawn`` method since the node is multi-threaded) and gets back the
decoded transactions, which cost ~6 µs each to unpickle. Smaller batches, batches arriving
while the worker is still starting (about a second), and every batch when the worker cannot
run, are decoded in the calling thread: the result is the same either way,
:func:`decode_transaction` of each raw transaction, or the :class:`InvalidTransaction` it
raised.

:meth:`TxDecoder.prepared` makes a batch's results available to
:meth:`TxDecoder.decode` calls of the same thread (the RPC server decodes a JSON-RPC batch's
``eth_sendRawTransaction`` payloads together, then runs each request as usual).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
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


def _ignore_sigint() -> None:
    """In the worker: Ctrl-C reaches the whole process group; the node alone handles it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while spawning (a child inherits that from its first instruction on;
    only the main thread may change it, elsewhere the worker's initializer does it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class TxDecoder:
    """Decodes raw transactions for ``chain_id``, batches in a worker process."""

    def __init__(self, chain_id: int, *, workers: int = 1, min_batch: int = MIN_BATCH) -> None:
        self.chain_id = chain_id
        self.workers = workers
        self.min_batch = min_batch
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[None] | None = None  # the worker answered once
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
            except RuntimeError:  # closed meanwhile (the node is stopping)
                pass
        return decode_all(raws, self.chain_id)

    def decode(self, raw: bytes) -> Transaction:
        """``raw`` decoded (a prepared result if this thread has one); InvalidTransaction."""
        prepared: dict[bytes, Decoded] | None = getattr(self._local, "results", None)
        result = prepared.get(raw) if prepared else None
        if result is None:
            return decode_transaction(raw, self.chain_id)
        if isinstance(result, InvalidTransaction):
            raise result
        return result

    @contextlib.contextmanager
    def prepared(self, raws: Sequence[bytes]) -> Iterator[None]:
        """Decode ``raws`` together now; :meth:`decode` in this thread answers from the results
        until the block ends."""
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
            pool, self._pool, self._ready = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _worker(self) -> ProcessPoolExecutor | None:
        """The worker pool once it has started; starts it (without waiting) when missing."""
        if self.workers < 1:
            return None
        with self._lock:
            if self._pool is None and not self._closed:
                context = multiprocessing.get_context("spawn")
                with _sigint_ignored():  # spawned here, at the first submit
                    self._pool = ProcessPoolExecutor(
                        self.workers, mp_context=context, initializer=_ignore_sigint
                    )
                    self._ready = self._pool.submit(decode_all, [], self.chain_id)
            pool, ready = self._pool, self._ready
        if pool is None or ready is None or not ready.done():
            return None
        if ready.exception() is not None:
            log.warning("transaction decoder process failed to start: %s", ready.exception())
            self._drop(pool)
            return None
        return pool

    def start(self) -> None:
        """Start the worker now, without waiting (the RPC server does on startup, so the first
        batches find it running)."""
        self._worker()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Start the worker if needed and wait until it answers; False if it cannot."""
        self.start()
        ready = self._ready
        if ready is None:
            return False
        with contextlib.suppress(Exception):
            ready.result(timeout)
        return self._worker() is not None

    def _drop(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = self._ready = None
        pool.shutdown(wait=False, cancel_futures=True)
