"""Block production for a single validator.

* automine (``block_time == 0``): as soon as the pool has executable transactions, mine them
  one block per transaction, like Hardhat's automine;
* interval (``block_time > 0``): every ``block_time`` seconds, pack the pool's best transactions
  up to the block gas limit (and ``max_block_txs``) into one block; empty blocks are produced too.

The producer is the only writer of the chain. It runs in its own thread and logs one line per
block (height, txs, gas, milliseconds). Other writers (the dev methods: evm_mine, hardhat_set*,
evm_revert) hand it callables through :meth:`BlockProducer.call`, which it runs between blocks.

Dev-mode controls (``node.dev``): ``set_automine(False)`` stops automining (transactions wait
in the pool for an interval block or evm_mine; with no interval nothing is mined by itself);
``time_offset`` (evm_increaseTime) is added to the wall clock; ``next_timestamp``
(evm_setNextBlockTimestamp) is the timestamp of the next block, after which the offset moves so
later blocks continue from it (Hardhat's rule).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, TypeVar

from cybermiles.chain.params import Params
from cybermiles.chain.transactions import SET_CODE_TX_TYPE
from cybermiles.execution.errors import NonceTooHigh
from cybermiles.mempool import Mempool, MempoolConfig
from cybermiles.modules.addresses import STAKING
from cybermiles.node.blockchain import Blockchain, BuiltBlock, StateEdit, UpgradeRequired

log = logging.getLogger("cybermiles.producer")

T = TypeVar("T")


class BlockProducer:
    def __init__(
        self,
        chain: Blockchain,
        mempool: Mempool,
        *,
        block_time: float,
        max_block_txs: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.chain = chain
        self.mempool = mempool
        self.block_time = block_time
        self.max_block_txs = max_block_txs
        self.clock = clock
        self.listeners: list[Callable[[BuiltBlock], None]] = []
        self.time_offset = 0  # seconds added to the wall clock (evm_increaseTime)
        self.next_timestamp: int | None = None  # one-shot (evm_setNextBlockTimestamp)
        self._automine = block_time <= 0
        self._calls: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def automine(self) -> bool:
        return self._automine

    def set_automine(self, enabled: bool) -> None:
        """Dev mode: turn automine on or off (off: interval blocks or evm_mine only)."""
        with self._wake:
            self._automine = enabled
            self._wake.notify_all()

    def clock_time(self) -> int:
        """The wall clock in whole seconds plus the dev time offset."""
        return int(self.clock()) + self.time_offset

    def block_timestamp(self) -> int:
        """The timestamp the next block asks for (consumes ``next_timestamp``)."""
        wanted = self.next_timestamp
        if wanted is None:
            return self.clock_time()
        self.next_timestamp = None
        self.time_offset = wanted - int(self.clock())
        return wanted

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the producer thread, between blocks, and return its result.

        Its exception is re-raised here and does not stop the producer. Before ``start`` (and
        from the producer thread itself) ``fn`` runs at once in the calling thread.
        """
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return fn()
        future: Future[T] = Future()
        with self._wake:
            if self._stopping or not thread.is_alive():
                raise RuntimeError("the block producer is not running")
            self._calls.append((fn, future))
            self._wake.notify_all()
        return future.result()

    def _fail_calls(self) -> None:
        with self._wake:
            self._stopping = True  # the thread is ending: call() must not queue any more
            calls, self._calls = list(self._calls), deque()
        for _, future in calls:
            future.set_exception(RuntimeError("the block producer stopped"))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="block-producer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()

    def notify(self) -> None:
        """A transaction arrived (automine wakes up)."""
        with self._wake:
            self._wake.notify_all()

    def _run(self) -> None:
        try:
            next_at = self.clock() + self.block_time
            while True:
                with self._wake:
                    if self._stopping:
                        return
                    call = self._calls.popleft() if self._calls else None
                    if call is None:
                        if self.automine:
                            if self.mempool.status()["pending"] == 0:
                                self._wake.wait(0.5)
                                continue
                        elif self.block_time <= 0:  # dev: automine off, no interval
                            self._wake.wait(0.5)
                            continue
                        else:
                            delay = next_at - self.clock()
                            if delay > 0:
                                self._wake.wait(delay)
                                continue
                            next_at += self.block_time
                            if next_at < self.clock():
                                next_at = self.clock() + self.block_time
                if call is not None:
                    fn, future = call
                    try:
                        future.set_result(fn())
                    except Exception as exc:  # the caller's error, not the producer's
                        future.set_exception(exc)
                    continue
                self.produce(1 if self.automine else self.max_block_txs)
        except UpgradeRequired as exc:  # a clean stop: the operator must install the new version
            self.error = exc
        except BaseException as exc:  # the node must stop rather than run without a producer
            log.exception("block producer failed")
            self.error = exc
        finally:
            self._fail_calls()

    def produce(
        self, max_txs: int, *, timestamp: int | None = None, state_edit: StateEdit | None = None
    ) -> BuiltBlock:
        """Build, commit and announce one block from the pool's best transactions.

        ``timestamp`` defaults to :meth:`block_timestamp`; ``state_edit`` (dev mode) changes
        the state at the start of the block (see ``Blockchain.build_block``).
        """
        started = time.perf_counter()
        candidates = (
            self.mempool.select(self.chain.params.block_gas_limit, max_txs) if max_txs else []
        )
        block = self.chain.build_block(
            candidates,
            timestamp=self.block_timestamp() if timestamp is None else timestamp,
            coinbase=STAKING,  # fees go to the block's reward pool (docs/staking.md)
            max_txs=max_txs,
            state_edit=state_edit,
        )
        update_pool(self.mempool, block, state_edited=state_edit is not None)
        self.mempool.config = pool_config(self.mempool.config, self.chain.params)
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.info(
            "block %d txs=%d gas=%d ms=%.1f hash=0x%s",
            block.header.block_number,
            len(block.transactions),
            block.header.gas_used,
            elapsed_ms,
            block.hash.hex()[:16],
        )
        for listener in self.listeners:
            try:
                listener(block)
            except Exception:  # a subscriber's failure must never stop block production
                log.exception("block listener failed")
        return block


def pool_config(config: MempoolConfig, params: Params) -> MempoolConfig:
    """``config`` with the admission limits of ``params`` (governance may have changed them)."""
    wanted = {
        "min_gas_price": params.min_gas_price,
        "free_tx_quota": params.free_tx_quota,
        "block_gas_limit": params.block_gas_limit,
        "max_tx_size": params.max_tx_size,
    }
    if all(getattr(config, name) == value for name, value in wanted.items()):
        return config
    return replace(config, **wanted)


def update_pool(mempool: Mempool, block: BuiltBlock, *, state_edited: bool = False) -> None:
    """Bring the pool up to the new head after ``block``.

    Included transactions advance their senders' nonces, which ``remove_included`` applies
    directly. Every pooled sender's nonce is re-read from the head state (``reset``) only when
    the block moved nonces its included transactions do not tell: a transaction dropped as
    invalid, a dev state edit, or an EIP-7702 authorization (it bumps the authority's nonce).
    """
    dropped = [tx for tx, exc in block.rejected if not isinstance(exc, NonceTooHigh)]
    mempool.remove_included(block.transactions + dropped)
    if dropped or state_edited or any(tx.type == SET_CODE_TX_TYPE for tx in block.transactions):
        mempool.reset()
