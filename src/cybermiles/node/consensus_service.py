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
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import cybermiles
from cybermiles.chain.errors import InvalidTransaction
from cybermiles.chain.header import header_hash
from cybermiles.consensus.reactor import ConsensusReactor
from cybermiles.consensus.wal import WAL
from cybermiles.node.consensus_app import ChainConsensusApp
from cybermiles.node.keys import load_priv_validator
from cybermiles.p2p.gossip import TxGossip
from cybermiles.p2p.keys import load_or_generate_node_key
from cybermiles.p2p.peers import Peer
from cybermiles.p2p.switch import Switch

if TYPE_CHECKING:
    from cybermiles.chain.transactions import Transaction
    from cybermiles.node.node import Node

log = logging.getLogger("cybermiles.consensus")

START_TIMEOUT = 60.0  # seconds for the WAL replay and the listener to come up


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

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # kept for the runner; the thread must not die silently
            if self.error is None:
                self.error = exc
                log.error("consensus stopped: %s", exc)
        finally:
            self._started.set()

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
        loop.call_soon_threadsafe(gossip.broadcast_tx, tx.raw, tx.hash)

    async def _on_txs(self, peer: Peer, raw_txs: list[bytes]) -> None:
        """Admit a peer's transactions (``Node.submit_raw_transaction`` gossips the new valid
        ones on)."""
        for raw in raw_txs:
            try:
                self.node.submit_raw_transaction(raw)
            except InvalidTransaction:
                continue  # known, underpriced, nonce too low...: normal in gossip

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
