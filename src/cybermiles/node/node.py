"""A node: chain + transaction pool + block producer, wired from a home directory."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from cybermiles.chain.genesis import Genesis, load_genesis
from cybermiles.chain.transactions import Transaction
from cybermiles.mempool import Mempool, MempoolConfig
from cybermiles.node.accounts import LocalAccounts
from cybermiles.node.blockchain import Blockchain
from cybermiles.node.config import DATA_DIR, GENESIS_FILE, NodeConfig, load_config
from cybermiles.node.consensus_service import ConsensusService
from cybermiles.node.dev import DevTools
from cybermiles.node.producer import BlockProducer, pool_config
from cybermiles.node.tx_decoder import TxDecoder
from cybermiles.state.account import Account

log = logging.getLogger("cybermiles.node")


class HeadStateReader:
    """The pool's view of the head state.

    Accounts read for a head are kept until the head changes (a block's state never changes,
    and every state change, dev edits included, makes a new head), so a sender's nonce and
    balance cost one database read per block however many transactions it sends. Reads go to
    the state of the head's number, so an entry always matches the head it is kept for.
    Admission is re-checked by the block executor, so a head moving during admission does no
    harm.
    """

    MAX_CACHED = 100_000

    def __init__(self, chain: Blockchain) -> None:
        self.chain = chain
        self._accounts: tuple[object, dict[bytes, Account]] = (None, {})

    def _account(self, addr: bytes) -> Account:
        head = self.chain.head
        entry = self._accounts
        if entry[0] is not head:
            entry = self._accounts = (head, {})
        account = entry[1].get(addr)
        if account is None:
            with self.chain.state_at(head.block_number) as state:
                account = state.get_account_or_empty(addr)
            if len(entry[1]) < self.MAX_CACHED:
                entry[1][addr] = account
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
        self.tx_decoder = TxDecoder(self.chain_id)
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
        self.tx_decoder.close()
        self.chain.close()

    def submit_raw_transaction(self, raw: bytes) -> bytes:
        """Decode, recover the sender once, admit to the pool; return the tx hash.

        Raises ``InvalidTransaction`` (geth's messages) when decoding or admission fails.
        """
        tx = self.tx_decoder.decode(raw)
        self.submit_transaction(tx)
        return tx.hash

    def submit_transaction(self, tx: Transaction) -> None:
        self.mempool.add(tx)
        if self.consensus is not None:
            self.consensus.announce(tx)
        else:
            self.producer.notify()
