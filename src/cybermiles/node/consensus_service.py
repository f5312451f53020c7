"""A validator (or full) node's network side: the p2p switch, transaction gossip and the
consensus reactor, on an event loop of their own.

They run on a dedicated thread so that executing a block (``ChainConsensusApp.check`` and
``commit``, called by the reactor) never stalls the JSON-RPC server's loop, and the RPC
server's work never delays votes. Transactions cross between the two sides thread-safely:
``announce`` (RPC -> peers) and the gossip handler (peers -> mempool).

A failure that stops the reactor (``Divergence``, a WAL or signer write error) is kept in
``error``; the runner (``cli.run``) stops the node with it. Nothing restarts consensus
automatically.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import cybermiles
from cybermiles.chain.errors import InvalidTransaction
from cybermiles.chain.header import header_hash
from cybermiles.consensus.reactor import ConsensusReactor
from cybermiles.consensus.wal import WAL
from cybermiles.crypto.keccak import keccak256
from cybermiles.node.consensus_app import ChainConsensusApp
from cybermiles.node.keys import load_priv_validator, load_validator_key
from cybermiles.p2p.gossip import SeenSet, TxGossip
from cybermiles.p2p.keys import load_or_generate_node_key
from cybermiles.p2p.peers import Peer
from cybermiles.p2p.switch import Switch

if TYPE_CHECKING:
    from cybermiles.chain.transactions import Transaction
    from cybermiles.node.node import Node

log = logging.getLogger("cybermiles.consensus")

START_TIMEOUT = 60.0  # seconds for the WAL replay and the listener to come up
# Set to a directory to cProfile the consensus thread (``consensus-<pid>.prof`` at stop).
PROFILE_ENV = "CMT_PROFILE_CONSENSUS"
KNOWN_TXS = 200_000  # hashes of gossiped txs already handled (skipped when they come again)


class ConsensusService:
    """Owns the switch, the gossip and the reactor of ``node`` (see the module docstring)."""

    def __init__(self, node: Node, home: Path) -> None:
        self.node = node
        self.home = Path(home)
        config = node.config
        self.app = ChainConsensusApp(
            node.chain,
            node.mempool,
            chain_id=node.chain_id,
            max_block_txs=config.mining.max_block_txs,
            validator_key=load_validator_key(self.home),  # its beacon onion builds from it
        )
        self.app.listeners = node.producer.listeners  # RPC subscriptions hook in there
        self.error: BaseException | None = None
        self.switch: Switch | None = None
        self.reactor: ConsensusReactor | None = None
        self._gossip: TxGossip | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consensus", daemon=True)
        # Gossiped txs are decoded and admitted on their own thread (see _on_txs).
        self._ingest_queue: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self._ingest: threading.Thread | None = None
        self._known = SeenSet(KNOWN_TXS)
        self._announce_lock = threading.Lock()
        self._announced: list[tuple[bytes, bytes]] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the thread; return once the reactor runs (or raise what stopped it)."""
        self._thread.start()
        if not self._started.wait(START_TIMEOUT):
            raise RuntimeError("consensus did not start within a minute")
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(30)
        self._ingest_queue.put(None)
        if self._ingest is not None:
            self._ingest.join(10)

    def _run(self) -> None:
        profile_dir = os.environ.get(PROFILE_ENV)
        profiler = None
        if profile_dir:  # benchmarking aid: cProfile this thread, dumped when it ends
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # kept for the runner; the thread must not die silently
            if self.error is None:
                self.error = exc
                log.error("consensus stopped: %s", exc)
        finally:
            self._started.set()
            if profiler is not None:
                profiler.disable()
                path = Path(profile_dir or ".") / f"consensus-{os.getpid()}.prof"
                with contextlib.suppress(OSError):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    profiler.dump_stats(path)

    async def _main(self) -> None:
        node, config = self.node, self.node.config
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        genesis_header = node.chain.blocks.header(0)
        assert genesis_header is not None
        genesis = header_hash(genesis_header)
        self.switch = Switch(
            load_or_generate_node_key(self.home),
            config.p2p.to_p2p_config(),
            chain_id=node.chain_id,
            genesis_hash=genesis,
            moniker=config.moniker,
            version=cybermiles.__version__,
        )
        self._gossip = TxGossip(self.switch, self._on_txs)
        wal = WAL(config.consensus.wal_path(self.home))
        try:
            self.reactor = ConsensusReactor(
                self.app,
                self.switch,
                load_priv_validator(self.home),
                wal,
                node.chain_id,
                config.consensus.timeout_config(),
            )
            await self.switch.start()
            self._gossip.start()
            await self.reactor.start()
            log.info(
                "consensus running: node id %s, p2p %s, %s",
                self.switch.node_id,
                config.p2p.listen_addr,
                "validator" if self.reactor.priv is not None else "full node (no validator key)",
            )
            self._started.set()
            waiter = asyncio.create_task(self.reactor.wait())
            stopper = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if waiter in done:
                waiter.result()  # raises the reactor's error, if any
            for task in (waiter, stopper):
                task.cancel()
        finally:
            if self.reactor is not None:
                await self.reactor.stop()
            await self._gossip.stop()
            await self.switch.stop()
            wal.close()

    # ------------------------------------------------------------------ transactions

    def announce(self, tx: Transaction) -> None:
        """Gossip a transaction the node admitted (callable from any thread)."""
        loop, gossip = self._loop, self._gossip
        if loop is None or gossip is None or loop.is_closed():
            return
        self._known.add(tx.hash)  # its gossiped copies need no decoding once it left the pool
        # One loop wake-up per burst, not per tx: each wake-up is a syscall and a GIL hand-off.
        with self._announce_lock:
            self._announced.append((tx.raw, tx.hash))
            if len(self._announced) > 1:
                return
        loop.call_soon_threadsafe(self._broadcast_announced)

    def _broadcast_announced(self) -> None:
        with self._announce_lock:
            announced, self._announced = self._announced, []
        gossip = self._gossip
        if gossip is None:
            return
        for raw, tx_hash in announced:
            gossip.broadcast_tx(raw, tx_hash)

    async def _on_txs(self, peer: Peer, raw_txs: list[bytes]) -> None:
        """Hand a peer's transactions to the ingest thread (never decoded on this loop: sender
        recovery of a busy network's transactions would delay votes and proposals)."""
        self._ingest_queue.put(raw_txs)
        if self._ingest is None:
            self._ingest = threading.Thread(target=self._ingest_loop, name="tx-ingest", daemon=True)
            self._ingest.start()

    def _ingest_loop(self) -> None:
        profile_dir = os.environ.get(PROFILE_ENV)
        if not profile_dir:
            self._ingest_txs()
            return
        import cProfile

        profiler = cProfile.Profile()
        try:
            profiler.runcall(self._ingest_txs)
        finally:
            with contextlib.suppress(OSError):
                profiler.dump_stats(Path(profile_dir) / f"ingest-{os.getpid()}.prof")

    def _ingest_txs(self) -> None:
        """Admit gossiped transactions in arrival order (``Node.submit_raw_transaction`` gossips
        the new valid ones on). A tx already pooled, or seen here recently, is skipped before
        decoding: in a mesh every tx arrives from several peers."""
        pool, known = self.node.mempool, self._known
        while True:
            raw_txs = self._ingest_queue.get()
            if raw_txs is None:
                return
            for raw in raw_txs:
                tx_hash = keccak256(raw)
                if tx_hash in known or tx_hash in pool:
                    continue
                known.add(tx_hash)
                try:
                    self.node.submit_raw_transaction(raw)
                except InvalidTransaction:
                    continue  # underpriced, nonce too low...: normal in gossip
                except Exception:  # the thread must survive whatever one tx does
                    log.exception("admitting a gossiped transaction failed")

    # ------------------------------------------------------------------ status

    def peer_count(self) -> int:
        return len(self.switch.peers) if self.switch is not None else 0

    def status(self) -> dict[str, int | str | None]:
        """Height, round and step of the reactor now (read from another thread: a snapshot)."""
        reactor = self.reactor
        state = getattr(reactor, "state", None)
        return {
            "height": getattr(state, "height", None),
            "round": getattr(state, "round", None),
            "step": getattr(getattr(state, "step", None), "name", None),
            "committed": self.app.height(),
            "peers": self.peer_count(),
            "node_id": self.switch.node_id if self.switch is not None else None,
        }
