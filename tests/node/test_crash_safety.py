"""Crash safety: a real `cmt node` under load is SIGKILLed at random moments and restarted.

A load thread sends signed transfers from 20 funded keys (nonce-ordered per sender, a few in
flight each) over raw JSON-RPC and records every receipt the node returns. The main thread
kills the node with SIGKILL at seeded-random moments, restarts it on the same home and checks,
while the load is paused:

* the node comes up (it verifies its state root against the head header on start, and refuses
  to start otherwise) and stays up; the head and state root it logs match what RPC reports;
* every receipt ever reported is still there, with the same block number and block hash;
* the head is at least the highest block ever seen (in a receipt or from eth_blockNumber);
* every block seen before is unchanged; every transaction in every block is one we signed;
* for the head and a few random blocks: all transactions retrievable, the transactions root
  matches them, receipts' cumulative gas ends at the block's gasUsed (no half-written block);
* each sender's nonce equals the number of its transactions in blocks, and balances of
  senders, recipients and the coinbase equal what the mined transactions imply.

Transactions that were not mined when the node died may be lost (the pool is memory-only):
the load re-sends from each sender's first un-mined nonce. Set CMT_CRASH_SEED to replay a run
(CMT_CRASH_KILLS changes the number of kills, 20 by default).

Each restart runs `cmt node` through the `cmt` entry point in a "warm spare" process that did
its imports (seconds of py-evm/py_ecc) while the previous node was running: the node code path
is the same, the test just does not wait 20 times for the imports. ``test_restart`` and
``test_devnet`` run the `cmt` script itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_account.signers.local import LocalAccount
from node_harness import (
    CHAIN_ID,
    FEE_POOL,
    GWEI,
    CmtProcess,
    Processes,
    Rpc,
    RpcError,
    free_port,
    genesis_doc,
    hexint,
    init_home,
    make_accounts,
    sign_transfer,
    startup_head,
)
from trie import HexaryTrie

SEED = int(os.environ.get("CMT_CRASH_SEED", "20250527"))
KILLS = int(os.environ.get("CMT_CRASH_KILLS", "20"))  # at least 20 in the suite
SENDERS = 20
RECIPIENTS = 40
IN_FLIGHT = 4  # unconfirmed transactions per sender
BLOCK_TIME = "0.2"
GAS = 21_000
START_BALANCE = 10**6 * 10**18


def recipient(index: int) -> str:
    return "0x" + hashlib.sha256(f"cmt crash recipient {index}".encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class SentTx:
    sender: int
    nonce: int
    raw: bytes
    hash: str
    to: str
    value: int


@dataclass
class Ledger:
    """What the load sent and what the node reported, shared by both threads (under ``lock``)."""

    accounts: list[LocalAccount]
    lock: threading.Lock = field(default_factory=threading.Lock)
    signed: dict[tuple[int, int], SentTx] = field(default_factory=dict)
    by_hash: dict[str, SentTx] = field(default_factory=dict)
    next_nonce: list[int] = field(default_factory=list)  # next nonce to send
    confirmed: list[int] = field(default_factory=list)  # receipts seen for nonces below this
    receipts: dict[str, tuple[int, str]] = field(default_factory=dict)  # hash -> (number, hash)
    max_block_seen: int = 0
    send_errors: list[str] = field(default_factory=list)
    sent: int = 0

    def __post_init__(self) -> None:
        self.next_nonce = [0] * len(self.accounts)
        self.confirmed = [0] * len(self.accounts)

    def tx(self, sender: int, nonce: int) -> SentTx:
        """The transfer (sender, nonce), signed once: a re-send is byte-identical."""
        key = (sender, nonce)
        found = self.signed.get(key)
        if found is None:
            rng = random.Random(f"{SEED}/{sender}/{nonce}")
            to = recipient(rng.randrange(RECIPIENTS))
            value = rng.randrange(1, 10**15)
            raw, tx_hash = sign_transfer(
                self.accounts[sender],
                nonce,
                chain_id=CHAIN_ID,
                to=to,
                value=value,
                dynamic=(sender + nonce) % 3 != 0,
                gas_price=GWEI,
                gas=GAS,
            )
            found = SentTx(sender, nonce, raw, tx_hash, to, value)
            with self.lock:
                self.signed[key] = found
                self.by_hash[tx_hash] = found
        return found

    def record(self, tx: SentTx, receipt: dict[str, Any]) -> None:
        assert receipt["transactionHash"] == tx.hash, receipt
        assert receipt["status"] == "0x1", receipt
        number = hexint(receipt["blockNumber"])
        with self.lock:
            previous = self.receipts.setdefault(tx.hash, (number, receipt["blockHash"]))
            assert previous == (number, receipt["blockHash"]), (tx.hash, previous, receipt)
            self.max_block_seen = max(self.max_block_seen, number)


class Load(threading.Thread):
    """Sends transfers as fast as the node takes them; pauses on request."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(name="crash-load", daemon=True)
        self.ledger = ledger
        self.url: str | None = None
        self.pause_requested = threading.Event()
        self.paused = threading.Event()
        self.stopping = threading.Event()
        self.failure: BaseException | None = None

    def pause(self, timeout: float = 30.0) -> None:
        self.pause_requested.set()
        assert self.paused.wait(timeout), "the load thread did not pause"

    def resume(self, url: str) -> None:
        self.url = url
        self.paused.clear()
        self.pause_requested.clear()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the main thread
            self.failure = exc
            self.paused.set()

    def _run(self) -> None:
        rpc: Rpc | None = None
        ledger = self.ledger
        while not self.stopping.is_set():
            if self.pause_requested.is_set() or self.url is None:
                if rpc is not None:
                    rpc.close()
                    rpc = None
                self.paused.set()
                time.sleep(0.01)
                continue
            if rpc is None or rpc.url != self.url:
                rpc = Rpc(self.url, timeout=10.0)
            try:
                for sender in range(len(ledger.accounts)):
                    if self.pause_requested.is_set():
                        break
                    while ledger.confirmed[sender] < ledger.next_nonce[sender]:
                        tx = ledger.tx(sender, ledger.confirmed[sender])
                        receipt = rpc.receipt(tx.hash)
                        if receipt is None:
                            break
                        ledger.record(tx, receipt)
                        ledger.confirmed[sender] += 1
                    while ledger.next_nonce[sender] - ledger.confirmed[sender] < IN_FLIGHT:
                        tx = ledger.tx(sender, ledger.next_nonce[sender])
                        try:
                            assert rpc.send_raw(tx.raw) == tx.hash
                        except RpcError as exc:
                            ledger.send_errors.append(f"{tx.sender}/{tx.nonce}: {exc}")
                            break
                        ledger.next_nonce[sender] += 1
                        ledger.sent += 1
            except (OSError, http.client.HTTPException, ValueError):
                # the node is down (killed) or died mid-answer: wait for the restart
                rpc.close()
                time.sleep(0.02)


# --------------------------------------------------------------------------- checks


@dataclass
class Verifier:
    ledger: Ledger
    rng: random.Random
    blocks: dict[int, str] = field(default_factory=dict)  # number -> hash of every block seen
    mined: dict[int, list[str]] = field(default_factory=dict)  # number -> tx hashes
    max_head_seen: int = 0
    most_txs_in_block: int = 0
    checked_receipts: int = 0  # receipts in ledger order already looked up one by one
    seconds: dict[str, float] = field(default_factory=dict)  # time spent per step
    _last: float = 0.0

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = self.seconds.get(step, 0.0) + now - self._last
        self._last = now

    def after_restart(self, rpc: Rpc, log_text: str, *, full: bool = False) -> None:
        """All checks after a restart (the load is paused). ``full`` looks up every block and
        every receipt one by one; otherwise old ones are covered through their blocks and by
        samples (the whole history again at the end of the test)."""
        ledger = self.ledger
        self._last = time.perf_counter()
        # 1. the head the node opened at, and its state root, are what RPC reports
        number0, hash_prefix, root_prefix = startup_head(log_text)
        assert number0 >= ledger.max_block_seen, (number0, ledger.max_block_seen)
        assert number0 >= self.max_head_seen, (number0, self.max_head_seen)
        block0 = rpc.block(number0)
        assert block0 is not None
        assert block0["hash"].startswith("0x" + hash_prefix), (block0["hash"], hash_prefix)
        assert block0["stateRoot"].startswith("0x" + root_prefix), (block0, root_prefix)
        head = rpc.block_number()
        assert head >= number0
        assert head >= ledger.max_block_seen, f"head {head} < block {ledger.max_block_seen} seen"
        latest = rpc.block("latest")
        assert latest is not None and hexint(latest["number"]) >= head
        self.lap("head")

        # 2. blocks seen before are unchanged (all, or the newest and a sample); scan new ones
        known = sorted(self.blocks)
        if not full and len(known) > 60:
            known = sorted({known[-1], *self.rng.sample(known, 50)})
        fetched = rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in known])
        for n, block in zip(known, fetched, strict=True):
            assert block is not None and block["hash"] == self.blocks[n], f"block {n} changed"
        start = max(self.blocks, default=-1) + 1
        new = rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(start, head + 1)])
        for n, block in zip(range(start, head + 1), new, strict=True):
            assert block is not None, f"block {n} <= head {head} missing"
            assert hexint(block["number"]) == n
            if n > 0:
                assert block["parentHash"] == self.blocks[n - 1], f"block {n} parent"
            self.blocks[n] = block["hash"]
            self.mined[n] = list(block["transactions"])
            self.most_txs_in_block = max(self.most_txs_in_block, len(block["transactions"]))
            for tx_hash in block["transactions"]:
                assert tx_hash in ledger.by_hash, f"block {n} holds unknown tx {tx_hash}"
        self.max_head_seen = max(self.max_head_seen, head)
        self.lap("blocks")

        # 3. every receipt ever reported is still there, in the same block: all of them through
        # their blocks' receipts; one by one (by hash) those not looked up before, and a sample
        with ledger.lock:
            reported = list(ledger.receipts.items())
        by_block: dict[int, dict[str, str]] = {}
        for tx_hash, (number, block_hash) in reported:
            by_block.setdefault(number, {})[tx_hash] = block_hash
        numbers = sorted(by_block)
        answers = rpc.batch([("eth_getBlockReceipts", [hex(n)]) for n in numbers])
        for number, receipts in zip(numbers, answers, strict=True):
            assert receipts is not None, f"receipts of block {number} lost"
            found = {r["transactionHash"]: r["blockHash"] for r in receipts}
            assert all(hexint(r["blockNumber"]) == number for r in receipts)
            for tx_hash, block_hash in by_block[number].items():
                assert found.get(tx_hash) == block_hash, f"receipt of {tx_hash} in {number}"
        singles = reported if full else reported[self.checked_receipts :]
        if not full:
            singles += self.rng.sample(reported, min(100, len(reported)))
        answers = rpc.batch([("eth_getTransactionReceipt", [h]) for h, _ in singles])
        for (tx_hash, (number, block_hash)), receipt in zip(singles, answers, strict=True):
            assert receipt is not None, f"receipt of {tx_hash} (block {number}) lost"
            assert (hexint(receipt["blockNumber"]), receipt["blockHash"]) == (number, block_hash)
        self.checked_receipts = len(reported)
        self.lap("receipts")

        # 4. the head and a few random blocks (preferably with transactions) are whole
        with_txs = [n for n, txs in self.mined.items() if txs]
        sample = {head, *self.rng.sample(with_txs, min(3, len(with_txs)))}
        sample.add(self.rng.choice(sorted(self.mined)))
        for n in sorted(sample):
            self.check_block(rpc, n)
        self.lap("whole blocks")

        # 5. nonces = transactions in blocks; balances follow from them
        mined_by_sender = [0] * len(ledger.accounts)
        mined_txs: list[SentTx] = []
        for hashes in self.mined.values():
            for tx_hash in hashes:
                tx = ledger.by_hash[tx_hash]
                mined_by_sender[tx.sender] += 1
                mined_txs.append(tx)
        nonces = rpc.batch(
            [("eth_getTransactionCount", [a.address, "latest"]) for a in ledger.accounts]
        )
        for sender, (nonce_hex, count) in enumerate(zip(nonces, mined_by_sender, strict=True)):
            nonce = hexint(nonce_hex)
            assert nonce == count, f"sender {sender}: nonce {nonce}, {count} txs in blocks"
            assert ledger.confirmed[sender] <= nonce, (
                f"sender {sender}: receipts were reported up to nonce "
                f"{ledger.confirmed[sender] - 1} but the chain's nonce is {nonce}"
            )
        for tx in mined_txs:
            assert tx.nonce < mined_by_sender[tx.sender], tx  # each sender's are 0..n-1
        self.check_balances(rpc, mined_txs)
        self.lap("nonces+balances")

        # 6. re-sync the load: mined-but-unseen receipts are recorded; the rest is re-sent
        missing = [
            ledger.tx(sender, k)
            for sender in range(len(ledger.accounts))
            for k in range(ledger.confirmed[sender], mined_by_sender[sender])
        ]
        receipts = rpc.batch([("eth_getTransactionReceipt", [t.hash]) for t in missing])
        for tx, receipt in zip(missing, receipts, strict=True):
            assert receipt is not None, f"mined tx {tx.sender}/{tx.nonce} has no receipt"
            ledger.record(tx, receipt)
        unmined = [
            ledger.signed[(sender, nonce)].hash
            for sender, nonce in enumerate(mined_by_sender)
            if (sender, nonce) in ledger.signed
        ]
        assert rpc.batch([("eth_getTransactionReceipt", [h]) for h in unmined]) == [None] * len(
            unmined
        )
        for sender, nonce in enumerate(mined_by_sender):
            ledger.confirmed[sender] = ledger.next_nonce[sender] = nonce
        self.lap("resync")

    def check_block(self, rpc: Rpc, number: int) -> None:
        block = rpc.block(number, True)
        assert block is not None, number
        assert block["hash"] == self.blocks[number]
        txs = block["transactions"]
        by_hash = rpc.batch([("eth_getTransactionByHash", [tx["hash"]]) for tx in txs])
        raws = []
        for index, (tx, again) in enumerate(zip(txs, by_hash, strict=True)):
            assert tx["blockHash"] == block["hash"] and hexint(tx["blockNumber"]) == number
            assert hexint(tx["transactionIndex"]) == index
            assert again == tx, tx["hash"]
            raws.append(self.ledger.by_hash[tx["hash"]].raw)
        trie = HexaryTrie({})
        for index, raw in enumerate(raws):
            trie[rlp.encode(index)] = raw
        assert block["transactionsRoot"] == "0x" + trie.root_hash.hex(), f"block {number}"
        receipts = rpc.batch([("eth_getTransactionReceipt", [tx["hash"]]) for tx in txs])
        assert rpc.call("eth_getBlockReceipts", hex(number)) == receipts
        cumulative = 0
        for index, (tx, receipt) in enumerate(zip(txs, receipts, strict=True)):
            assert receipt is not None, f"block {number} tx {index}: no receipt"
            assert receipt["blockHash"] == block["hash"]
            assert hexint(receipt["transactionIndex"]) == index
            cumulative += hexint(receipt["gasUsed"])
            assert hexint(receipt["cumulativeGasUsed"]) == cumulative, receipt
            assert receipt["from"].lower() == tx["from"].lower()
        assert cumulative == hexint(block["gasUsed"]), f"block {number}: gas {cumulative}"

    def check_balances(self, rpc: Rpc, mined: list[SentTx]) -> None:
        expected: dict[str, int] = {a.address.lower(): START_BALANCE for a in self.ledger.accounts}
        expected[FEE_POOL.lower()] = 0
        for index in range(RECIPIENTS):
            expected.setdefault(recipient(index), 0)
        for tx in mined:
            sender = self.ledger.accounts[tx.sender].address.lower()
            expected[sender] -= tx.value + GAS * GWEI
            expected[tx.to] += tx.value
            expected[FEE_POOL.lower()] += GAS * GWEI
        addresses = sorted(expected)
        balances = rpc.batch([("eth_getBalance", [a, "latest"]) for a in addresses])
        for address, balance in zip(addresses, balances, strict=True):
            assert hexint(balance) == expected[address], f"balance of {address}"


# --------------------------------------------------------------------------- the test


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_sigkill_under_load_loses_nothing_reported(tmp_path: Path, processes: Processes) -> None:
    rng = random.Random(SEED)
    accounts = make_accounts(SENDERS, SEED)
    home = tmp_path / "home"
    init_home(home, genesis_doc(accounts, chain_id=CHAIN_ID, balance=START_BALANCE))
    ledger = Ledger(accounts)
    verifier = Verifier(ledger, random.Random(SEED + 1))
    load = Load(ledger)
    started = time.monotonic()
    spare = processes.spare()

    def restart() -> tuple[CmtProcess, Rpc, str]:
        """Run `cmt node` on the home (in the warm spare) and prepare the next spare."""
        nonlocal spare
        begin = time.perf_counter()
        port = free_port()
        proc, spare = spare, processes.spare()
        proc.go(
            "node",
            "--home",
            str(home),
            "--rpc.addr",
            "127.0.0.1",
            "--rpc.port",
            str(port),
            "--block-time",
            BLOCK_TIME,
        )
        url = f"http://127.0.0.1:{port}"
        rpc = proc.wait_rpc(url, timeout=90)
        verifier.seconds["startup"] = (
            verifier.seconds.get("startup", 0) + time.perf_counter() - begin
        )
        return proc, rpc, url

    proc, rpc, url = restart()
    verifier.after_restart(rpc, proc.output())
    load.start()
    kills = 0
    try:
        while kills < KILLS:
            load.resume(url)
            time.sleep(rng.uniform(0.2, 1.5))
            assert load.failure is None, load.failure
            assert proc.alive(), f"node died by itself:\n{proc.tail()}"
            with contextlib.suppress(Exception):  # a lower bound for the head after the kill
                verifier.max_head_seen = max(verifier.max_head_seen, rpc.block_number())
            rpc.close()
            proc.signal(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
            kills += 1
            load.pause()
            assert load.failure is None, load.failure

            proc, rpc, url = restart()
            verifier.after_restart(rpc, proc.output(), full=kills == KILLS)
            assert proc.alive(), f"node exited after restart #{kills}:\n{proc.tail()}"
            assert "Traceback" not in proc.output(), proc.tail()
            assert not ledger.send_errors, ledger.send_errors[:10]
    finally:
        load.stopping.set()
        load.pause_requested.set()
        load.join(15)

    elapsed = time.monotonic() - started
    print(
        f"\ncrash safety: seed {SEED}, {kills} kills in {elapsed:.0f}s, {ledger.sent} sends, "
        f"{len(ledger.receipts)} receipts, {verifier.max_head_seen} blocks, "
        f"up to {verifier.most_txs_in_block} txs per block; seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in verifier.seconds.items())
    )
    assert kills >= KILLS
    assert len(ledger.receipts) >= 100, "too little load to mean anything"
    assert verifier.most_txs_in_block >= 3, "blocks never held several transactions"
