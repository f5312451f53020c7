"""Helpers for tests that run a multi-validator BFT network of real `cmt node` processes.

* ``Testnet`` writes the homes with ``init_testnet`` (what `cmt testnet init` runs), on free
  loopback ports, and starts / stops / kills its nodes through a ``Processes`` registry (so
  every process is killed at teardown);
* ``Load`` sends signed transfers from the funded test accounts, each account pinned to one
  node, re-reading its nonce whenever a node refused or did not answer;
* ``ChainDb`` reads a node's LMDB tables read-only while the node runs (LMDB allows readers in
  other processes): commits' signers and included evidence, which no RPC method exposes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from node_harness import CmtProcess, Processes, Rpc, RpcError, hexint, sign_transfer

from cybermiles.bench.network import free_port_range
from cybermiles.cli.devnet import dev_keys
from cybermiles.cli.testnet import MANIFEST_FILE, TESTNET_CHAIN_ID, init_testnet
from cybermiles.consensus.commit import Commit
from cybermiles.node.config import load_config, write_config
from cybermiles.p2p.keys import load_node_key, node_id_of, node_key_path

CHAIN_ID = TESTNET_CHAIN_ID


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds.
    Connection errors count as "not yet" (a node may be starting)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except (OSError, http.client.HTTPException, RpcError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}"
                + (f" (last error: {last_error})" if last_error else "")
            )
        time.sleep(interval)


# --------------------------------------------------------------------------- chain database


class ChainDb:
    """Read-only view of a node's LMDB environment (``HOME/data``), safe while it runs."""

    def __init__(self, home: Path) -> None:
        self.env = lmdb.open(str(home / "data"), readonly=True, lock=True, max_dbs=32, create=False)
        self.consensus = self.env.open_db(b"consensus", create=False)
        self.evidence = self.env.open_db(b"evidence", create=False)

    def close(self) -> None:
        self.env.close()

    def consensus_items(self, height: int) -> list[Any] | None:
        """RLP items of block ``height``'s consensus data: [last_commit, [evidence...], ...]."""
        with self.env.begin() as txn:
            raw = txn.get(height.to_bytes(8, "big"), db=self.consensus)
        return None if raw is None else rlp.decode(raw)

    def last_commit(self, height: int) -> Commit | None:
        """The commit of block ``height - 1`` carried by block ``height``."""
        items = self.consensus_items(height)
        if items is None or not items[0]:
            return None
        return Commit.decode(items[0])

    def block_evidence(self, height: int) -> list[bytes]:
        items = self.consensus_items(height)
        return [] if items is None else list(items[1])

    def included_evidence(self) -> dict[bytes, int]:
        """Every evidence hash the chain included -> block number."""
        with self.env.begin() as txn, txn.cursor(db=self.evidence) as cursor:
            return {bytes(k): int.from_bytes(v, "big") for k, v in cursor}


@contextlib.contextmanager
def chain_db(home: Path) -> Iterator[ChainDb]:
    db = ChainDb(home)
    try:
        yield db
    finally:
        db.close()


# --------------------------------------------------------------------------- the network


@dataclass(slots=True)
class NetNode:
    index: int
    name: str
    home: Path
    rpc_url: str
    node_id: str
    owner: str  # checksum address of the validator (owner); "" for a non-validator
    pub_key: str
    proc: CmtProcess | None = None
    rpc: Rpc | None = None
    starts: int = 0
    wanted: bool = False  # started and not stopped on purpose: must stay alive
    logs: list[Path] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def output(self) -> str:
        """Everything every run of this node logged, runs separated by a marker line."""
        parts = []
        for number, path in enumerate(self.logs):
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"===== {self.name} run {number + 1} ({path.name}) =====\n{text}")
        return "\n".join(parts)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


class Testnet:
    """A testnet of ``validators`` homes under ``home`` (see the module docstring)."""

    __test__ = False  # not a pytest test class

    def __init__(self, home: Path, processes: Processes) -> None:
        self.home = home
        self.processes = processes
        manifest = json.loads((home / MANIFEST_FILE).read_text())
        self.manifest = manifest
        self.nodes = [
            NetNode(
                i,
                entry["name"],
                home / entry["home"],
                entry["rpc"],
                entry["node_id"],
                entry["owner"],
                entry["pub_key"],
            )
            for i, entry in enumerate(manifest["nodes"])
        ]
        self.accounts: list[LocalAccount] = [
            Account.from_key(key) for _, key in dev_keys(int(manifest["accounts"]))
        ]
        self._spares: list[CmtProcess] = []

    @classmethod
    def create(
        cls,
        home: Path,
        processes: Processes,
        *,
        validators: int = 4,
        accounts: int = 8,
        params: dict[str, Any] | None = None,
        timeouts: str | dict[str, Any] | None = None,
    ) -> Testnet:
        """``init_testnet`` on free ports; then ``params`` overrides the genesis parameters
        and ``timeouts`` the ``[consensus] timeouts`` of every node."""
        p2p = free_port_range(validators)
        rpc = free_port_range(validators, avoid=set(range(p2p, p2p + validators)))
        init_testnet(
            home,
            validators=validators,
            base_port=p2p,
            rpc_base_port=rpc,
            accounts=accounts,
            show_progress=False,
        )
        for i in range(validators):
            node_home = home / f"node{i}"
            if params:
                path = node_home / "genesis.json"
                genesis = json.loads(path.read_text())
                genesis["params"].update({k: str(v) for k, v in params.items()})
                path.write_text(json.dumps(genesis, indent=2))
            if timeouts is not None:
                config = load_config(node_home)
                config.consensus.timeouts = timeouts
                write_config(node_home, config)
        return cls(home, processes)

    # ------------------------------------------------------------------ processes

    def warm(self, count: int = 1) -> None:
        """Start ``count`` warm spares (imports paid now, while nothing waits for them)."""
        for _ in range(count):
            self._spares.append(self.processes.spare(name="spare"))

    def start(self, i: int, *, wait: bool = True) -> NetNode:
        """Run `cmt node --home nodeI` (on a warm spare if one is ready)."""
        node = self.nodes[i]
        assert not node.running, f"{node.name} is already running"
        if self._spares:
            proc = self._spares.pop(0)
            proc.go("node", "--home", str(node.home))
        else:
            proc = self.processes.spawn("node", "--home", str(node.home), name=node.name)
        node.proc = proc
        node.wanted = True
        node.logs.append(proc.log_path)
        node.starts += 1
        if node.rpc is not None:
            node.rpc.close()
        if wait:
            node.rpc = proc.wait_rpc(node.rpc_url, timeout=90)
        else:
            node.rpc = Rpc(node.rpc_url)
        return node

    def stop(self, i: int, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal node ``i`` and wait for it to exit; its exit code."""
        node = self.nodes[i]
        assert node.proc is not None and node.running, f"{node.name} is not running"
        node.wanted = False
        node.proc.signal(sig)
        try:
            code = node.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            raise AssertionError(
                f"{node.name} did not exit within {timeout}s:\n{node.tail()}"
            ) from None
        if node.rpc is not None:
            node.rpc.close()
        return code

    def running(self) -> list[NetNode]:
        return [n for n in self.nodes if n.running]

    def check_alive(self, nodes: list[NetNode] | None = None) -> None:
        for node in nodes if nodes is not None else [n for n in self.nodes if n.wanted]:
            if not node.running:
                code = node.proc.proc.returncode if node.proc is not None else None
                raise AssertionError(f"{node.name} exited ({code}):\n{node.tail(60)}")

    # ------------------------------------------------------------------ chain queries

    @staticmethod
    def height(node: NetNode) -> int:
        assert node.rpc is not None
        return node.rpc.block_number()

    def heights(self, nodes: list[NetNode]) -> dict[str, int]:
        return {n.name: self.height(n) for n in nodes}

    def wait_heights(self, nodes: list[NetNode], target: int, timeout: float) -> dict[str, int]:
        """Wait until every node in ``nodes`` committed ``target``; their heights."""

        def reached() -> dict[str, int] | None:
            self.check_alive(nodes)
            heights = self.heights(nodes)
            return heights if min(heights.values()) >= target else None

        try:
            return wait_until(reached, timeout, f"height {target} on {[n.name for n in nodes]}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.describe(nodes)}") from None

    def wait_progress(self, nodes: list[NetNode], blocks: int, timeout: float) -> dict[str, int]:
        """Wait until every node in ``nodes`` is ``blocks`` past the current highest of them."""
        start = max(self.heights(nodes).values())
        return self.wait_heights(nodes, start + blocks, timeout)

    def hashes(self, node: NetNode, first: int, last: int) -> list[str]:
        assert node.rpc is not None
        blocks = node.rpc.batch(
            [("eth_getBlockByNumber", [hex(n), False]) for n in range(first, last + 1)]
        )
        out = []
        for number, block in zip(range(first, last + 1), blocks, strict=True):
            assert block is not None, f"{node.name} has no block {number}"
            assert hexint(block["number"]) == number
            out.append(block["hash"])
        return out

    def assert_same_chain(self, nodes: list[NetNode], first: int = 0) -> int:
        """Every node has the same block hash at every height up to the lowest head; that
        height."""
        top = min(self.heights(nodes).values())
        reference = self.hashes(nodes[0], first, top)
        for node in nodes[1:]:
            theirs = self.hashes(node, first, top)
            for number, (a, b) in enumerate(zip(reference, theirs, strict=True), start=first):
                assert a == b, (
                    f"fork at height {number}: {nodes[0].name} has {a}, {node.name} has {b}"
                )
        return top

    def consensus_state(self, node: NetNode) -> dict[str, Any]:
        assert node.rpc is not None
        return node.rpc.call("cmt_consensusState")

    def validators(self, node: NetNode) -> dict[str, dict[str, Any]]:
        """``cmt_queryValidators`` at the head of ``node``, by owner address."""
        assert node.rpc is not None
        answer = node.rpc.call("cmt_queryValidators")
        return {v["owner_address"]: v for v in answer["data"]}

    def describe(self, nodes: list[NetNode] | None = None) -> str:
        """Status and log tail of the nodes (for failure messages)."""
        lines = []
        for node in nodes if nodes is not None else self.nodes:
            try:
                state = self.consensus_state(node) if node.running else "not running"
            except Exception as exc:  # only for a message
                state = f"no answer ({exc})"
            lines.append(f"--- {node.name}: {state}\n{node.tail(25)}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- load


@dataclass(slots=True)
class LoadStats:
    sent: list[str] = field(default_factory=list)  # tx hashes the nodes admitted
    errors: int = 0
    last_error: str = ""


class Load(threading.Thread):
    """``tps`` transfers per second; account ``j`` goes to node ``pin[j]`` (skipped while
    that node is not running). Nonces are re-read (``pending``) after any refusal."""

    def __init__(self, net: Testnet, tps: float = 4.0, nodes: list[int] | None = None) -> None:
        super().__init__(name="network-test-load", daemon=True)
        self.net = net
        self.tps = tps
        targets = nodes if nodes is not None else [n.index for n in net.nodes]
        self.pin = {j: targets[j % len(targets)] for j in range(len(net.accounts))}
        self.stats = LoadStats()
        self.stop_event = threading.Event()
        self._nonce: dict[int, int] = {}
        self._rpcs = {i: Rpc(net.nodes[i].rpc_url, timeout=5.0) for i in set(targets)}

    def stop(self) -> None:
        self.stop_event.set()
        self.join(15)
        for rpc in self._rpcs.values():
            rpc.close()

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self) -> None:
        j = 0
        count = len(self.net.accounts)
        while not self.stop_event.wait(1.0 / self.tps):
            for _ in range(count):
                j = (j + 1) % count
                if self.net.nodes[self.pin[j]].running:
                    break
            else:
                continue
            self._send(j)

    def _send(self, j: int) -> None:
        account = self.net.accounts[j]
        rpc = self._rpcs[self.pin[j]]
        try:
            if j not in self._nonce:
                self._nonce[j] = rpc.nonce(account.address, "pending")
            raw, tx_hash = sign_transfer(
                account, self._nonce[j], chain_id=CHAIN_ID, to="0x" + "22" * 20, value=1
            )
            rpc.send_raw(raw)
        except (OSError, http.client.HTTPException, RpcError, AssertionError) as exc:
            rpc.close()
            self._nonce.pop(j, None)
            self.stats.errors += 1
            self.stats.last_error = str(exc)[:200]
            return
        self._nonce[j] += 1
        self.stats.sent.append(tx_hash)


# --------------------------------------------------------------------------- a twin signer


def make_twin(net: Testnet, i: int, home: Path, timeouts: str | dict[str, Any] | None) -> NetNode:
    """A second home signing with node ``i``'s consensus key: the same genesis and config
    (peers: every testnet node), its own node key, fresh ports, an empty ``data/`` (so an
    empty last-sign state) and, if given, other consensus ``timeouts``."""
    original = net.nodes[i]
    (home / "config").mkdir(parents=True)
    shutil.copy(original.home / "genesis.json", home / "genesis.json")
    key_file = home / "config" / "priv_validator_key.json"
    shutil.copy(original.home / "config" / "priv_validator_key.json", key_file)
    key_file.chmod(0o600)
    config = load_config(original.home)
    p2p = free_port_range(1)
    rpc = free_port_range(1, avoid={p2p})
    config.moniker = f"{original.name}-twin"
    config.rpc.port = rpc
    config.p2p.listen_addr = f"127.0.0.1:{p2p}"
    config.p2p.persistent_peers = [
        f"{n.node_id}@{load_config(n.home).p2p.listen_addr}" for n in net.nodes
    ]
    if timeouts is not None:
        config.consensus.timeouts = timeouts
    write_config(home, config)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from cybermiles.p2p.keys import save_node_key

    save_node_key(node_key_path(home), Ed25519PrivateKey.generate())
    node_id = node_id_of(load_node_key(node_key_path(home)))
    twin = NetNode(
        len(net.nodes),
        f"{original.name}-twin",
        home,
        f"http://127.0.0.1:{rpc}",
        node_id,
        original.owner,
        original.pub_key,
    )
    net.nodes.append(twin)
    return twin
