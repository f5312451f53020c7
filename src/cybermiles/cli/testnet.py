"""`cmt testnet init|start`: a local multi-validator network on loopback.

``cmt testnet init --validators N --home DIR`` writes ``DIR/node0`` … ``DIR/node{N-1}``, each a
full node home, plus ``DIR/testnet.json`` (the manifest ``start`` reads):

* ``config.toml``: RPC on ``--rpc-base-port + i``, p2p on ``127.0.0.1:(--base-port + i)``,
  ``persistent_peers`` = every other node as ``node_id@127.0.0.1:port``, ``[consensus]
  enabled = true`` with the testnet timeouts (:data:`TESTNET_TIMEOUTS`), ``mining.block_time``
  1 s (what the single-producer mode uses while consensus is not wired);
* ``config/node_key.json`` (p2p identity), ``config/priv_validator_key.json`` (consensus key),
  both mode 0600;
* ``keystore/``: the validator's *owner* account (a fresh key, funded in genesis), encrypted
  with the password in ``config/owner_password.txt`` (mode 0600, testnets only), so
  ``cmt node --home DIR/nodeI --unlock 0 --password DIR/nodeI/config/owner_password.txt``
  lets the node sign staking transactions for it;
* ``genesis.json``, identical in every home: N validators (owner, consensus ``pub_key``,
  equal ``max_amount``, comp rate 0.2, ``beacon_commitment`` = the tip of the validator's
  onion 0, built from ``onion_seed(consensus seed, 0)`` with the full 2^20 layers, since the
  staking module counts 2^20 reveals per commitment), K funded accounts of the well-known test
  mnemonic (as ``cmt devnet``), and short testnet periods (:data:`TESTNET_PARAMS`).

``cmt testnet start --home DIR`` runs ``cmt node --home DIR/nodeI`` for every node as child
processes (each in its own process group, output to ``DIR/nodeI/node.log``), shows a live
table (height, round, peers, tx/s, last block age) and stops them all on Ctrl-C / SIGTERM or
after ``--duration`` seconds. ``--load TPS`` sends signed plain transfers from the test
accounts; each account is pinned to one node (account ``j`` to node ``j mod N``), so its nonces
stay consistent even while every node still produces its own chain.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cybermiles.chain.params import CMT
from cybermiles.cli.common import console, fail
from cybermiles.cli.rpc_client import print_table
from cybermiles.node.config import CONFIG_FILE, GENESIS_FILE, KEYSTORE_DIR, NodeConfig

TESTNET_CHAIN_ID = 19
DEFAULT_BASE_PORT = 26656
DEFAULT_RPC_BASE_PORT = 8545
MANIFEST_FILE = "testnet.json"
NODE_LOG = "node.log"
OWNER_PASSWORD_FILE = Path("config") / "owner_password.txt"
MAX_VALIDATORS = 64
VALIDATOR_MAX_AMOUNT = 10_000_000 * CMT  # self-stake 1,000,000 CMT at the default 10% ratio
OWNER_BALANCE = 10_000 * CMT
ACCOUNT_BALANCE = 10_000 * CMT
BLOCK_TIME = 1.0  # single-producer mode only (consensus paces itself with its timeouts)
# Elections every 10 blocks, unbonding and proposals in minutes instead of weeks.
TESTNET_PARAMS: dict[str, Any] = {
    "epoch_blocks": 10,
    "unstake_waiting_period": 30,
    "proposal_expire_period": 60,
    "jail_period": 30,
    "proposal_deposit": str(1 * CMT),
}
# Loopback timeouts: short enough for ~1 s blocks, long enough for Python nodes under load.
TESTNET_TIMEOUTS: dict[str, Any] = {
    "propose_ms": 1000,
    "propose_delta_ms": 500,
    "prevote_ms": 500,
    "prevote_delta_ms": 250,
    "precommit_ms": 500,
    "precommit_delta_ms": 250,
    "commit_ms": 500,
}
STATUS_METHOD = "cmt_consensusState"  # {"height", "round", "step", ...}; optional
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
RATE_WINDOW = 10.0
LOG_TAIL_LINES = 5
_NODE_DIR = re.compile(r"node(\d+)")


# --------------------------------------------------------------------------- init


def _onion_tip(seed: bytes) -> bytes:
    """The genesis beacon commitment of a consensus key seed (run in a worker process)."""
    from cybermiles.consensus.beacon import HashOnion, onion_seed

    return HashOnion(onion_seed(seed, 0)).tip


def build_onion_tips(seeds: list[bytes], *, show_progress: bool = True) -> list[bytes]:
    """The onion tips of ``seeds``, built in parallel (about 2 s of CPU each), with a bar."""
    tips: list[bytes | None] = [None] * len(seeds)
    workers = max(1, min(len(seeds), os.cpu_count() or 1))
    progress = Progress(
        TextColumn("beacon onions (2^20 layers each)"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
    )
    with progress:
        task = progress.add_task("onions", total=len(seeds))
        if workers == 1:
            for i, seed in enumerate(seeds):
                tips[i] = _onion_tip(seed)
                progress.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_onion_tip, seed): i for i, seed in enumerate(seeds)}
                for future in as_completed(futures):
                    tips[futures[future]] = future.result()
                    progress.advance(task)
    return [tip for tip in tips if tip is not None]


@dataclass(slots=True)
class PlannedNode:
    index: int
    home: Path
    p2p_port: int
    rpc_port: int
    node_id: str = ""
    pub_key: bytes = b""
    owner: str = ""  # checksum address


def _existing_nodes(home: Path) -> list[Path]:
    if not home.is_dir():
        return []
    return sorted(
        (p for p in home.iterdir() if p.is_dir() and _NODE_DIR.fullmatch(p.name)),
        key=lambda p: int(p.name[4:]),
    )


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _save_owner_key(home: Path, private_key: bytes, password: str) -> str:
    """Keystore v3 file of the owner (light scrypt: its password sits beside it)."""
    from eth_account import Account

    acct = Account.from_key(private_key)
    document = Account.encrypt(private_key, password, kdf="scrypt", iterations=2**14)
    directory = home / KEYSTORE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    _write_private(
        directory / f"UTC--{stamp}.000000000Z--{acct.address[2:].lower()}", json.dumps(document)
    )
    _write_private(home / OWNER_PASSWORD_FILE, password + "\n")
    return str(acct.address)


def node_config(
    node: PlannedNode, peers: list[str], timeouts: str | dict[str, Any] | None = None
) -> NodeConfig:
    """The config.toml of a testnet node."""
    config = NodeConfig(moniker=f"node{node.index}")
    config.rpc.addr = "127.0.0.1"
    config.rpc.port = node.rpc_port
    config.mining.block_time = BLOCK_TIME
    config.p2p.listen_addr = f"127.0.0.1:{node.p2p_port}"
    config.p2p.persistent_peers = peers
    config.consensus.enabled = True
    config.consensus.timeouts = dict(TESTNET_TIMEOUTS) if timeouts is None else timeouts
    return config


def init_testnet(
    home: Path,
    *,
    validators: int,
    chain_id: int = TESTNET_CHAIN_ID,
    base_port: int = DEFAULT_BASE_PORT,
    rpc_base_port: int = DEFAULT_RPC_BASE_PORT,
    accounts: int = 10,
    force: bool = False,
    show_progress: bool = True,
    extra_alloc: dict[str, dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
    timeouts: str | dict[str, Any] | None = None,
    configure: Callable[[NodeConfig], None] | None = None,
) -> list[PlannedNode]:
    """Write the testnet homes under ``home``; return what was written (see module doc).

    Library hooks (``cmt bench network`` uses them): ``extra_alloc`` adds genesis accounts,
    ``params`` overrides chain parameters (over :data:`TESTNET_PARAMS`), ``timeouts`` replaces
    :data:`TESTNET_TIMEOUTS` and ``configure`` edits each node's config before it is written.
    """
    from eth_account import Account
    from eth_utils import to_checksum_address

    from cybermiles.cli.devnet import dev_keys
    from cybermiles.cli.init import create_home, default_genesis
    from cybermiles.node.keys import ValidatorKey, save_validator_key, validator_key_path
    from cybermiles.p2p.keys import node_id_of, node_key_path, save_node_key

    if not 1 <= validators <= MAX_VALIDATORS:
        fail(f"--validators must be in 1..{MAX_VALIDATORS}, got {validators}")
    p2p_ports = set(range(base_port, base_port + validators))
    rpc_ports = set(range(rpc_base_port, rpc_base_port + validators))
    if max(p2p_ports | rpc_ports) > 65535:
        fail("ports past 65535: lower --base-port / --rpc-base-port")
    if p2p_ports & rpc_ports:
        fail(
            f"p2p ports {base_port}..{base_port + validators - 1} overlap RPC ports "
            f"{rpc_base_port}..{rpc_base_port + validators - 1}"
        )
    existing = _existing_nodes(home)
    if existing or (home / MANIFEST_FILE).exists():
        if not force:
            fail(
                f"{home} already holds a testnet ({len(existing)} node homes); pass --force to "
                "replace it (its keys and chain data are deleted)"
            )
        for path in existing:
            shutil.rmtree(path)
        (home / MANIFEST_FILE).unlink(missing_ok=True)
    home.mkdir(parents=True, exist_ok=True)

    nodes = [
        PlannedNode(i, home / f"node{i}", base_port + i, rpc_base_port + i)
        for i in range(validators)
    ]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    keys: list[ValidatorKey] = []
    owner_keys: list[bytes] = []
    for node in nodes:
        node.home.mkdir(parents=True)
        node_key = Ed25519PrivateKey.generate()
        save_node_key(node_key_path(node.home), node_key)
        node.node_id = node_id_of(node_key)
        key = ValidatorKey.generate()
        save_validator_key(validator_key_path(node.home), key)
        node.pub_key = key.pub_key
        keys.append(key)
        owner_key = bytes(Account.create().key)
        owner_keys.append(owner_key)
        node.owner = str(Account.from_key(owner_key).address)

    tips = build_onion_tips([k.seed for k in keys], show_progress=show_progress)

    alloc: dict[str, dict[str, str]] = {}
    for node in nodes:
        alloc[node.owner] = {"balance": str(OWNER_BALANCE)}
    for address, _ in dev_keys(accounts) if accounts else []:
        alloc[to_checksum_address(address)] = {"balance": str(ACCOUNT_BALANCE)}
    alloc.update(extra_alloc or {})
    genesis_validators = [
        {
            "address": node.owner,
            "pub_key": "0x" + node.pub_key.hex(),
            "max_amount": str(VALIDATOR_MAX_AMOUNT),
            "comp_rate": "0.2",
            "name": f"node{node.index}",
            "beacon_commitment": "0x" + tip.hex(),
        }
        for node, tip in zip(nodes, tips, strict=True)
    ]
    chain_params = dict(TESTNET_PARAMS)
    chain_params["max_vals"] = max(19, validators)
    chain_params.update(params or {})
    genesis = default_genesis(chain_id, alloc, genesis_validators, chain_params)

    for node, owner_key in zip(nodes, owner_keys, strict=True):
        peers = [f"{o.node_id}@127.0.0.1:{o.p2p_port}" for o in nodes if o is not node]
        config = node_config(node, peers, timeouts)
        if configure is not None:
            configure(config)
        create_home(node.home, genesis, config, force=True)
        _save_owner_key(node.home, owner_key, secrets.token_hex(16))

    manifest = {
        "chain_id": chain_id,
        "accounts": accounts,
        "nodes": [
            {
                "name": f"node{n.index}",
                "home": n.home.name,
                "node_id": n.node_id,
                "p2p": f"127.0.0.1:{n.p2p_port}",
                "rpc": f"http://127.0.0.1:{n.rpc_port}",
                "pub_key": "0x" + n.pub_key.hex(),
                "owner": n.owner,
            }
            for n in nodes
        ],
    }
    (home / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return nodes


@click.group("testnet")
def testnet_group() -> None:
    """A local multi-validator network on loopback: `init` writes it, `start` runs it."""


@testnet_group.command("init")
@click.option(
    "--validators",
    type=int,
    required=True,
    help=f"Number of validator nodes (1..{MAX_VALIDATORS}).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("testnet"),
    show_default=True,
    help="Directory for the node homes node0 … node{N-1} and testnet.json.",
)
@click.option(
    "--chain-id", type=click.IntRange(1, 2**53 - 1), default=TESTNET_CHAIN_ID, show_default=True
)
@click.option(
    "--base-port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_BASE_PORT,
    show_default=True,
    help="P2P port of node0 (node i listens on base + i).",
)
@click.option(
    "--rpc-base-port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_RPC_BASE_PORT,
    show_default=True,
    help="JSON-RPC port of node0 (node i serves on base + i).",
)
@click.option(
    "--accounts",
    type=click.IntRange(0, 1000),
    default=10,
    show_default=True,
    help="Funded test accounts (the well-known test mnemonic, as `cmt devnet`).",
)
@click.option("--force", is_flag=True, help="Replace an existing testnet in --home.")
def testnet_init(
    validators: int,
    home: Path,
    chain_id: int,
    base_port: int,
    rpc_base_port: int,
    accounts: int,
    force: bool,
) -> None:
    """Write N validator homes with keys, one genesis and each other as peers."""
    nodes = init_testnet(
        home,
        validators=validators,
        chain_id=chain_id,
        base_port=base_port,
        rpc_base_port=rpc_base_port,
        accounts=accounts,
        force=force,
    )
    table = Table(title=f"testnet: chain {chain_id}, {len(nodes)} validators, in {home}")
    for column in ("node", "node id", "p2p", "rpc", "validator (owner)"):
        table.add_column(column, no_wrap=True)
    for n in nodes:
        table.add_row(
            f"node{n.index}",
            n.node_id,
            f"127.0.0.1:{n.p2p_port}",
            f"http://127.0.0.1:{n.rpc_port}",
            n.owner,
        )
    print_table(table)
    click.echo(
        f"{accounts} funded test accounts (test mnemonic, 10,000 CMT each). "
        f"Run it with: cmt testnet start --home {home}"
    )


# --------------------------------------------------------------------------- JSON-RPC


class _Rpc:
    """A tiny keep-alive JSON-RPC client; every failure returns None (the table shows it)."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        match = re.fullmatch(r"http://([^:/]+):(\d+)/?", url)
        if match is None:
            raise ValueError(f"unsupported RPC URL {url!r}")
        self.host, self.port = match.group(1), int(match.group(2))
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]] | None:
        """Send ``calls`` as one batch; the answers in call order (each ``result`` or
        ``error``), or None when the node did not answer."""
        if not calls:
            return []
        body = json.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in enumerate(calls)
            ]
        ).encode()
        for attempt in (0, 1):
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(
                        self.host, self.port, timeout=self.timeout
                    )
                self._conn.request(
                    "POST", "/", body=body, headers={"Content-Type": "application/json"}
                )
                response = self._conn.getresponse()
                data = response.read()
                answers = json.loads(data)
            except (OSError, http.client.HTTPException, ValueError):
                self.close()
                if attempt:
                    return None
                continue
            if not isinstance(answers, list):
                return None
            by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
            return [by_id.get(i, {"error": {"message": "no answer"}}) for i in range(len(calls))]
        return None


# --------------------------------------------------------------------------- start


@dataclass(slots=True)
class NodeProcess:
    name: str
    home: Path
    rpc_url: str
    process: subprocess.Popen[bytes] | None = None
    rpc: _Rpc | None = None
    height: int | None = None
    round: int | None = None
    peers: int | None = None
    head_time: int | None = None
    answered: bool = False
    status_supported: bool = True
    first_height: int | None = None
    rates: deque[tuple[float, int]] = field(default_factory=deque)
    txs_total: int = 0
    exit_code: int | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tx_rate(self, now: float, started: float) -> float:
        while self.rates and self.rates[0][0] < now - RATE_WINDOW:
            self.rates.popleft()
        span = min(RATE_WINDOW, max(now - started, 1e-9))
        return sum(n for _, n in self.rates) / span

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        try:
            with open(self.home / NODE_LOG, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 8192))
                text = handle.read().decode(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]


def _cmt_argv(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("cmt")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from cybermiles.cli.main import main; main()", *args]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM if `cmt testnet start` dies without cleaning up."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _load_manifest(home: Path) -> dict[str, Any]:
    path = home / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        fail(f"{path} not found: run `cmt testnet init --validators N --home {home}` first")
    except ValueError as exc:
        fail(f"{path}: {exc}")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("nodes"), list):
        fail(f"{path}: not a testnet manifest")
    return manifest


def start_children(nodes: list[NodeProcess]) -> None:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"
    for node in nodes:
        if not (node.home / CONFIG_FILE).exists():
            fail(f"{node.home / CONFIG_FILE} not found: re-run `cmt testnet init`")
        log = open(node.home / NODE_LOG, "ab")  # noqa: SIM115 - the child keeps it
        log.write(f"\n=== cmt testnet start {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        log.flush()
        try:
            node.process = subprocess.Popen(
                _cmt_argv("node", "--home", str(node.home)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: we signal it, the tty does not
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        finally:
            log.close()
        node.rpc = _Rpc(node.rpc_url)


def stop_children(nodes: list[NodeProcess], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every child's process group, wait, then SIGKILL whatever is left."""
    for node in nodes:
        if node.alive and node.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(node.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for node in nodes:
        if node.process is None:
            continue
        try:
            node.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(5)
        # Anything the node left in its group (it should leave nothing).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(node.process.pid, signal.SIGKILL)
        node.exit_code = node.process.returncode
        if node.rpc is not None:
            node.rpc.close()


def poll_node(node: NodeProcess, now: float) -> None:
    """Refresh one node's row from its RPC."""
    if node.process is not None and node.process.poll() is not None:
        node.exit_code = node.process.returncode
        return
    assert node.rpc is not None
    calls: list[tuple[str, list[Any]]] = [
        ("eth_getBlockByNumber", ["latest", False]),
        ("net_peerCount", []),
    ]
    if node.status_supported:
        calls.append((STATUS_METHOD, []))
    answers = node.rpc.batch(calls)
    if answers is None:
        return
    node.answered = True
    head = answers[0].get("result")
    if isinstance(head, dict):
        height = int(head["number"], 16)
        node.head_time = int(head["timestamp"], 16)
        if node.height is not None and height > node.height:
            first = max(node.height + 1, height - 50)
            blocks = node.rpc.batch(
                [("eth_getBlockByNumber", [hex(n), False]) for n in range(first, height)]
            )
            count = len(head.get("transactions", []))
            for answer in blocks or []:
                block = answer.get("result")
                if isinstance(block, dict):
                    count += len(block.get("transactions", []))
            node.rates.append((now, count))
            node.txs_total += count
        if node.first_height is None:
            node.first_height = height
        node.height = height
    peers = answers[1].get("result")
    if isinstance(peers, str):
        node.peers = int(peers, 16)
    if node.status_supported:
        status = answers[2]
        if "error" in status:
            if status["error"].get("code") == -32601:
                node.status_supported = False
        elif isinstance(status.get("result"), dict):
            value = status["result"].get("round")
            node.round = int(value, 16) if isinstance(value, str) else value


# --------------------------------------------------------------------------- load


@dataclass(slots=True)
class LoadStats:
    sent: int = 0
    rejected: int = 0
    committed: int = 0
    last_error: str = ""


class LoadGenerator(threading.Thread):
    """Sends ``tps`` signed plain transfers per second from the test accounts.

    Account ``j`` always goes to node ``j mod N`` (in nonce order), signed in batches of one
    second's worth with the fast signer of ``cybermiles.bench.txgen``. Committed = the sum of
    the accounts' on-chain nonce increases at their node.
    """

    def __init__(
        self,
        nodes: list[NodeProcess],
        keys: list[tuple[bytes, bytes]],
        chain_id: int,
        gas_price: int,
        tps: float,
    ) -> None:
        super().__init__(name="cmt-testnet-load", daemon=True)
        self.nodes = nodes
        self.keys = keys
        self.chain_id = chain_id
        self.gas_price = gas_price
        self.tps = tps
        self.stats = LoadStats()
        self.stop_event = threading.Event()
        self._rpcs = [_Rpc(n.rpc_url, timeout=10.0) for n in nodes]
        self._start_nonce: dict[bytes, int] = {}
        self._nonce: dict[bytes, int] = {}
        self._resync: set[bytes] = set()

    def _node_of(self, j: int) -> int:
        return j % len(self.nodes)

    def _fetch_nonces(self, accounts: list[int], tag: str) -> dict[bytes, int]:
        out: dict[bytes, int] = {}
        by_node: dict[int, list[int]] = {}
        for j in accounts:
            by_node.setdefault(self._node_of(j), []).append(j)
        for i, js in by_node.items():
            answers = self._rpcs[i].batch(
                [("eth_getTransactionCount", ["0x" + self.keys[j][0].hex(), tag]) for j in js]
            )
            for j, answer in zip(js, answers or [], strict=False):
                if isinstance(answer.get("result"), str):
                    out[self.keys[j][0]] = int(answer["result"], 16)
        return out

    def _sign_batch(
        self, count: int, cursor: int
    ) -> tuple[dict[int, list[tuple[bytes, str]]], int]:
        from cybermiles.bench.txgen import sign_dynamic_fee_tx

        batches: dict[int, list[tuple[bytes, str]]] = {}
        k = len(self.keys)
        for _ in range(count):
            j = cursor % k
            cursor += 1
            address, key = self.keys[j]
            if address not in self._nonce:
                continue
            raw = sign_dynamic_fee_tx(
                key,
                chain_id=self.chain_id,
                nonce=self._nonce[address],
                max_priority_fee_per_gas=self.gas_price,
                max_fee_per_gas=self.gas_price,
                gas=21_000,
                to=self.keys[(j + 1) % k][0],
                value=1,
            )
            self._nonce[address] += 1
            batches.setdefault(self._node_of(j), []).append((address, "0x" + raw.hex()))
        return batches, cursor

    def run(self) -> None:
        all_accounts = list(range(len(self.keys)))
        while not self.stop_event.is_set() and len(self._start_nonce) < len(self.keys):
            self._start_nonce.update(self._fetch_nonces(all_accounts, "pending"))
            self._nonce = dict(self._start_nonce)
            if len(self._start_nonce) < len(self.keys):
                self.stop_event.wait(1.0)
        cursor = 0
        budget = 0.0
        last = time.monotonic()
        last_count = 0.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            budget = min(budget + self.tps * (now - last), max(self.tps, 1.0))
            last = now
            count = int(budget)
            if count:
                budget -= count
                if self._resync:
                    fresh = self._fetch_nonces(
                        [j for j, (a, _) in enumerate(self.keys) if a in self._resync], "pending"
                    )
                    self._nonce.update(fresh)
                    self._resync.clear()
                batches, cursor = self._sign_batch(count, cursor)
                for i, raws in batches.items():
                    self._send(i, raws)
            if now - last_count >= 1.0:
                last_count = now
                self._count_committed()
            self.stop_event.wait(0.1)
        self._count_committed()
        for rpc in self._rpcs:
            rpc.close()

    def _send(self, i: int, txs: list[tuple[bytes, str]]) -> None:
        answers = self._rpcs[i].batch([("eth_sendRawTransaction", [raw]) for _, raw in txs])
        if answers is None:
            self.stats.rejected += len(txs)
            self.stats.last_error = f"{self.nodes[i].name} did not answer"
            self._resync.update(address for address, _ in txs)
            return
        for (address, _), answer in zip(txs, answers, strict=True):
            if "result" in answer:
                self.stats.sent += 1
            else:
                self.stats.rejected += 1
                self.stats.last_error = str(answer.get("error", {}).get("message", "error"))
                self._resync.add(address)  # its later nonces would be gapped: re-read it

    def _count_committed(self) -> None:
        nonces = self._fetch_nonces(list(range(len(self.keys))), "latest")
        if nonces:
            self.stats.committed = sum(
                max(0, nonces.get(a, self._start_nonce.get(a, 0)) - self._start_nonce.get(a, 0))
                for a, _ in self.keys
            )


# --------------------------------------------------------------------------- display


def _age(node: NodeProcess, wall: float) -> str:
    if node.head_time is None:
        return "-"
    return f"{max(0.0, wall - node.head_time):.0f}s"


def render(
    nodes: list[NodeProcess],
    now: float,
    started: float,
    load: LoadGenerator | None,
    title: str,
) -> Group:
    table = Table(title=title)
    for column in ("node", "status", "height", "round", "peers", "tx/s", "last block"):
        table.add_column(column, no_wrap=True, justify="left" if column == "node" else "right")
    wall = time.time()
    tails: list[Any] = []
    for node in nodes:
        if node.exit_code is not None:
            status = Text(f"exited ({node.exit_code})", style="red")
            tails.append(Text(f"{node.name} ({node.home / NODE_LOG}):", style="bold red"))
            tails.extend(Text("  " + line) for line in node.log_tail())
        elif not node.answered:
            status = Text("starting", style="yellow")
        else:
            status = Text("running", style="green")
        table.add_row(
            node.name,
            status,
            "-" if node.height is None else str(node.height),
            "-" if node.round is None else str(node.round),
            "-" if node.peers is None else str(node.peers),
            f"{node.tx_rate(now, started):.1f}",
            _age(node, wall),
        )
    parts: list[Any] = [table]
    if load is not None:
        s = load.stats
        line = f"load {load.tps:g} tx/s: sent {s.sent}, committed {s.committed}"
        if s.rejected:
            line += f", rejected {s.rejected} (last: {s.last_error})"
        parts.append(Text(line))
    parts.extend(tails)
    return Group(*parts)


def summary(
    nodes: list[NodeProcess], load: LoadGenerator | None, elapsed: float, clean: bool
) -> dict[str, Any]:
    return {
        "duration": round(elapsed, 3),
        "clean_stop": clean,
        "nodes": [
            {
                "node": n.name,
                "pid": n.process.pid if n.process is not None else None,
                "rpc": n.rpc_url,
                "answered": n.answered,
                "first_height": n.first_height,
                "height": n.height,
                "round": n.round,
                "peers": n.peers,
                "txs": n.txs_total,
                "tx_per_s": round(n.txs_total / elapsed, 3) if elapsed > 0 else 0.0,
                "exit_code": n.exit_code,
            }
            for n in nodes
        ],
        "load": None
        if load is None
        else {
            "tps": load.tps,
            "sent": load.stats.sent,
            "committed": load.stats.committed,
            "rejected": load.stats.rejected,
        },
    }


@contextlib.contextmanager
def _signals_set(event: threading.Event) -> Iterator[None]:
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        event.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_testnet(
    home: Path,
    *,
    load_tps: float = 0.0,
    duration: float | None = None,
    live: bool = True,
    on_tick: Callable[[list[NodeProcess]], None] | None = None,
) -> tuple[list[NodeProcess], LoadGenerator | None, float, bool]:
    """Run the testnet until a signal, ``duration`` seconds after every node answered (or the
    startup timeout), or every node exited. Returns (nodes, load, seconds, clean stop)."""
    from cybermiles.chain.genesis import load_genesis

    manifest = _load_manifest(home)
    nodes = [
        NodeProcess(entry["name"], home / entry["home"], entry["rpc"])
        for entry in manifest["nodes"]
    ]
    if not nodes:
        fail(f"{home / MANIFEST_FILE} lists no nodes")
    load: LoadGenerator | None = None
    if load_tps > 0:
        from cybermiles.cli.devnet import dev_keys

        count = int(manifest.get("accounts", 0))
        if count < 1:
            fail("--load needs funded test accounts: re-run `cmt testnet init --accounts K`")
        genesis = load_genesis(nodes[0].home / GENESIS_FILE)
        load = LoadGenerator(
            nodes, dev_keys(count), genesis.chain_id, genesis.params.min_gas_price, load_tps
        )
    stop = threading.Event()
    started = time.monotonic()
    ready_at: float | None = None
    with _signals_set(stop):
        try:
            start_children(nodes)
            live_view = Live(
                console=console, auto_refresh=False, transient=False, redirect_stdout=False
            )
            title = f"testnet {home} (Ctrl-C stops it)"
            with live_view if live else contextlib.nullcontext():
                while not stop.is_set():
                    now = time.monotonic()
                    for node in nodes:
                        poll_node(node, now)
                    if ready_at is None and all(
                        n.answered or n.exit_code is not None for n in nodes
                    ):
                        ready_at = now
                        if load is not None:
                            load.start()
                    if live:
                        base = started if ready_at is None else ready_at
                        live_view.update(render(nodes, now, base, load, title), refresh=True)
                    if on_tick is not None:
                        on_tick(nodes)
                    if all(n.exit_code is not None for n in nodes):
                        break
                    if duration is not None:
                        since = ready_at if ready_at is not None else started
                        limit = duration if ready_at is not None else STARTUP_TIMEOUT
                        if now - since >= limit:
                            break
                    stop.wait(max(0.05, 1.0 - (time.monotonic() - now)))
        finally:
            if load is not None and load.is_alive():
                load.stop_event.set()
                load.join(15)
            crashed = {n.name for n in nodes if n.exit_code is not None}
            stop_children(nodes)
    elapsed = time.monotonic() - (ready_at if ready_at is not None else started)
    clean = not crashed and all(n.exit_code == 0 for n in nodes)
    return nodes, load, elapsed, clean


@testnet_group.command("start")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("testnet"),
    show_default=True,
    help="Directory written by `cmt testnet init`.",
)
@click.option(
    "--load",
    "load_tps",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Send this many signed plain transfers per second from the test accounts.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop this many seconds after every node answers RPC (default: until Ctrl-C).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a final JSON summary line.")
def testnet_start(home: Path, load_tps: float, duration: float | None, as_json: bool) -> None:
    """Run every node of the testnet with a live status table (Ctrl-C stops them all)."""
    nodes, load, elapsed, clean = run_testnet(home, load_tps=load_tps, duration=duration)
    result = summary(nodes, load, elapsed, clean)
    table = Table(title=f"testnet stopped after {elapsed:.1f}s")
    for column in ("node", "height", "blocks", "txs", "tx/s", "exit"):
        table.add_column(column, justify="left" if column == "node" else "right")
    for n in result["nodes"]:
        blocks = "-" if n["height"] is None else str(n["height"] - (n["first_height"] or 0))
        table.add_row(
            n["node"],
            "-" if n["height"] is None else str(n["height"]),
            blocks,
            str(n["txs"]),
            f"{n['tx_per_s']:.1f}",
            str(n["exit_code"]),
        )
    console.print(table)
    if load is not None:
        s = load.stats
        console.print(f"load: sent {s.sent}, committed {s.committed}, rejected {s.rejected}")
    if as_json:
        click.echo(json.dumps(result))
    if not clean:
        raise SystemExit(1)
