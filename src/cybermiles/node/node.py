"""A node: chain + transaction pool + block producer, wired from a home directory."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cybermiles.chain.genesis import Genesis, load_genesis
from cybermiles.chain.transactions import Transaction, decode_transaction
from cybermiles.mempool import Mempool, MempoolConfig
from cybermiles.node.accounts import LocalAccounts
from cybermiles.node.blockchain import Blockchain
from cybermiles.node.config import DATA_DIR, GENESIS_FILE, NodeConfig, load_config
from cybermiles.node.consensus_service import ConsensusService
from cybermiles.node.dev import DevTools
from cybermiles.node.producer import BlockProducer, pool_config
from cybermiles.state.account import Account

log = logging.getLogger("cybermiles.node")


class HeadStateReader:
    """The pool's view of the head state (each read in its own LMDB read transaction).

    Admission reads a sender's nonce and then its balance: the last account read is kept per
    thread for the same head, so that pair costs one database read. Admission is re-checked
    by the block executor, so a head moving between the two reads does no harm.
    """

    def __init__(self, chain: Blockchain) -> None:
        self.chain = chain
        self._last = threading.local()

    def _account(self, addr: bytes) -> Account:
        head = self.chain.head_hash
        last = getattr(self._last, "entry", None)
        if last is not None and last[0] == addr and last[1] == head:
            return last[2]
        with self.chain.state_at() as state:
            account = state.get_account_or_empty(addr)
        self._last.entry = (addr, head, account)
        return account

    def get_nonce(self, addr: bytes) -> int:
        return self._account(addr).nonce

    def get_balance(self, addr: bytes) -> int:
        return self._account(addr).balance

    def has_code(self, addr: bytes) -> bool:
        return self._account(addr).has_code

    def free_txs_used(self, addr: bytes) -> int:
        return self.chain.free_txs_used(addr)


@dataclass(slots=True)
class DevAccounts:
    """Accounts whose private keys the node holds (devnet only)."""

    keys: dict[bytes, bytes] = field(default_factory=dict)


class Node:
    """Everything one process runs except the RPC server and the CLI."""

    def __init__(
        self,
        home: Path,
        config: NodeConfig | None = None,
        genesis: Genesis | None = None,
        *,
        dev: bool = False,
        dev_keys: dict[bytes, bytes] | None = None,
        unlocked_keys: dict[bytes, bytes] | None = None,
        allow_unlimited_contract_size: bool = False,
    ) -> None:
        if allow_unlimited_contract_size and not dev:
            raise ValueError("unlimited contract size is for development chains only")
        self.home = home
        self.config = config or load_config(home)
        self.genesis = genesis or load_genesis(home / GENESIS_FILE)
        self.dev = dev
        self.dev_accounts = DevAccounts(dict(dev_keys or {}))
        # Keys eth_sendTransaction & co. sign with: the dev keys (devnet), then --unlock ones.
        signing_keys = dict(dev_keys or {}) if dev else {}
        signing_keys.update(unlocked_keys or {})
        self.accounts = LocalAccounts(signing_keys)
        self.chain = Blockchain(home / DATA_DIR, self.genesis, archive=self.config.archive)
        self.chain.unlimited_contract_size = allow_unlimited_contract_size
        self.mempool = Mempool(
            pool_config(MempoolConfig(), self.chain.params), HeadStateReader(self.chain)
        )
        self.producer = BlockProducer(
            self.chain,
            self.mempool,
            block_time=self.config.mining.block_time,
            max_block_txs=self.config.mining.max_block_txs,
        )
        self.dev_tools = DevTools(self.chain, self.mempool, self.producer) if dev else None
        # With [consensus] enabled the validators agree on every block over p2p; otherwise
        # this node builds its chain alone (devnet, single-validator nodes).
        self.consensus: ConsensusService | None = None
        if self.config.consensus.enabled:
            if dev:
                raise ValueError("a devnet builds its own blocks: it cannot run consensus")
            self.consensus = ConsensusService(self, home)

    @property
    def chain_id(self) -> int:
        return self.chain.chain_id

    def start(self) -> None:
        head = self.chain.head
        log.info(
            "chain %d at block %d (0x%s), state root 0x%s",
            self.chain_id,
            head.block_number,
            self.chain.head_hash.hex()[:16],
            head.state_root.hex()[:16],
        )
        if self.consensus is not None:
            self.consensus.start()
        else:
            self.producer.start()

    @property
    def error(self) -> BaseException | None:
        """What stopped block production (the producer's or consensus' failure), if anything."""
        if self.consensus is not None:
            return self.consensus.error
        return self.producer.error

    def stop(self) -> None:
        if self.consensus is not None:
            self.consensus.stop()
        self.producer.stop()
        self.chain.close()

    def submit_raw_transaction(self, raw: bytes) -> bytes:
        """Decode, recover the sender once, admit to the pool; return the tx hash.

        Raises ``InvalidTransaction`` (geth's messages) when decoding or admission fails.
        """
        tx = decode_transaction(raw, self.chain_id)
        self.submit_transaction(tx)
        return tx.hash

    def submit_transaction(self, tx: Transaction) -> None:
        self.mempool.add(tx)
        if self.consensus is not None:
            self.consensus.announce(tx)
        else:
            self.producer.notify()
