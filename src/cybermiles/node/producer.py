"""Block production for a single validator.

* automine (``block_time == 0``): as soon as the pool has executable transactions, mine them
  one block per transaction, like Hardhat's automine;
* interval (``block_time > 0``): every ``block_time`` seconds, pack the pool's best transactions
  up to the block gas limit (and ``max_block_txs``) into one block; empty blocks are produced too.

The producer is the only writer of the chain. It runs in its own thread and logs one line per
block (height, txs, gas, milliseconds).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from cybermiles.execution.errors import NonceTooHigh
from cybermiles.mempool import Mempool
from cybermiles.node.blockchain import Blockchain, BuiltBlock

log = logging.getLogger("cybermiles.producer")


class BlockProducer:
    def __init__(
        self,
        chain: Blockchain,
        mempool: Mempool,
        *,
        coinbase: bytes,
        block_time: float,
        max_block_txs: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.chain = chain
        self.mempool = mempool
        self.coinbase = coinbase
        self.block_time = block_time
        self.max_block_txs = max_block_txs
        self.clock = clock
        self.listeners: list[Callable[[BuiltBlock], None]] = []
        self.time_offset = 0  # seconds added to the wall clock (evm_increaseTime later)
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def automine(self) -> bool:
        return self.block_time <= 0

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
                    if self.automine:
                        if self.mempool.status()["pending"] == 0:
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
                self.produce(1 if self.automine else self.max_block_txs)
        except BaseException as exc:  # the node must stop rather than run without a producer
            log.exception("block producer failed")
            self.error = exc

    def produce(self, max_txs: int) -> BuiltBlock:
        """Build, commit and announce one block from the pool's best transactions."""
        started = time.perf_counter()
        candidates = self.mempool.select(self.chain.params.block_gas_limit, max_txs)
        block = self.chain.build_block(
            candidates,
            timestamp=int(self.clock()) + self.time_offset,
            coinbase=self.coinbase,
            max_txs=max_txs,
        )
        dropped = [tx for tx, exc in block.rejected if not isinstance(exc, NonceTooHigh)]
        self.mempool.remove_included(block.transactions + dropped)
        self.mempool.on_new_head()
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
