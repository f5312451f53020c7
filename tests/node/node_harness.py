"""Helpers for tests that run real `cmt` processes and talk JSON-RPC to them.

* every process is started in its own session (process group) and killed in fixture teardown;
* every wait is bounded by a timeout;
* ports are found by binding to port 0; homes live in pytest temp dirs.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from cybermiles.cli.main import cli

GWEI = 10**9
ETHER = 10**18
CHAIN_ID = 4321
# Every block's coinbase is the staking module; without validators, the end of each block
# moves the fees on to the community pool (docs/staking.md), where these tests find them.
COINBASE = "0x0000000000000000000000000000000000001000"
FEE_POOL = "0x0000000000000000000000000000000000001002"
_CMT_SCRIPT = Path(sys.executable).with_name("cmt")


def cmt_argv(*args: str) -> list[str]:
    """The command line running `cmt ARGS` with this interpreter's installation."""
    if _CMT_SCRIPT.exists():
        return [str(_CMT_SCRIPT), *args]
    return [sys.executable, "-c", "from cybermiles.cli.main import main; main()", *args]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # stdout lines (devnet banner) reach the log at once
    env["COLUMNS"] = "300"  # rich does not wrap log lines in the middle
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hexint(value: str) -> int:
    assert isinstance(value, str) and value.startswith("0x"), value
    return int(value, 16)


# --------------------------------------------------------------------------- JSON-RPC


class RpcError(Exception):
    def __init__(self, method: str, error: dict[str, Any]) -> None:
        self.method = method
        self.code = error.get("code")
        self.message = str(error.get("message", ""))
        self.data = error.get("data")
        super().__init__(f"{method}: JSON-RPC error {self.code}: {self.message}")


class Rpc:
    """A minimal JSON-RPC 2.0 client over one keep-alive HTTP connection (not thread-safe)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        match = re.fullmatch(r"http://([^:/]+):(\d+)/?", url)
        assert match, url
        self.url = url
        self.host, self.port = match.group(1), int(match.group(2))
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._id = 0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post(self, payload: Any) -> Any:
        """POST ``payload`` as JSON and return the decoded JSON answer."""
        body = json.dumps(payload).encode()
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(
                    "POST", "/", body=body, headers={"Content-Type": "application/json"}
                )
                response = self._conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server closed: retry once on a fresh one.
                self.close()
                if attempt:
                    raise
                continue
            except Exception:
                self.close()
                raise
            if response.status != 200:
                raise AssertionError(f"HTTP {response.status} from {self.url}: {data[:500]!r}")
            return json.loads(data)
        raise AssertionError("unreachable")

    def request(self, method: str, *params: Any) -> dict[str, Any]:
        """The whole JSON-RPC response object (``result`` or ``error``)."""
        self._id += 1
        answer = self.post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        assert isinstance(answer, dict), answer
        assert answer.get("jsonrpc") == "2.0" and answer.get("id") == self._id, answer
        assert ("result" in answer) != ("error" in answer), answer
        return answer

    def call(self, method: str, *params: Any) -> Any:
        answer = self.request(method, *params)
        if "error" in answer:
            raise RpcError(method, answer["error"])
        return answer["result"]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Results of ``calls`` sent as JSON-RPC batches, in order; any error raises."""
        out: list[Any] = []
        for start in range(0, len(calls), 200):
            chunk = calls[start : start + 200]
            base = self._id + 1
            self._id += len(chunk)
            payload = [
                {"jsonrpc": "2.0", "id": base + i, "method": m, "params": list(p)}
                for i, (m, p) in enumerate(chunk)
            ]
            answers = self.post(payload)
            assert isinstance(answers, list) and len(answers) == len(chunk), answers
            by_id = {a["id"]: a for a in answers}
            for i, (method, _params) in enumerate(chunk):
                answer = by_id[base + i]
                if "error" in answer:
                    raise RpcError(method, answer["error"])
                out.append(answer["result"])
        return out

    # conveniences
    def block_number(self) -> int:
        return hexint(self.call("eth_blockNumber"))

    def block(self, tag: int | str, full: bool = False) -> dict[str, Any] | None:
        return self.call("eth_getBlockByNumber", hex(tag) if isinstance(tag, int) else tag, full)

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        return self.call("eth_getTransactionReceipt", tx_hash)

    def balance(self, address: str, tag: str = "latest") -> int:
        return hexint(self.call("eth_getBalance", address, tag))

    def nonce(self, address: str, tag: str = "latest") -> int:
        return hexint(self.call("eth_getTransactionCount", address, tag))

    def send_raw(self, raw: bytes) -> str:
        return self.call("eth_sendRawTransaction", "0x" + raw.hex())

    def wait_receipt(self, tx_hash: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            receipt = self.receipt(tx_hash)
            if receipt is not None:
                return receipt
            time.sleep(0.05)
        raise AssertionError(f"no receipt for {tx_hash} within {timeout}s")


# --------------------------------------------------------------------------- keys and txs


def make_accounts(count: int, seed: int) -> list[LocalAccount]:
    rng = random.Random(seed)
    return [Account.from_key(rng.randbytes(32)) for _ in range(count)]


def sign_transfer(
    account: LocalAccount,
    nonce: int,
    *,
    chain_id: int = CHAIN_ID,
    to: str = "0x" + "22" * 20,
    value: int = 1,
    dynamic: bool = True,
    gas_price: int = GWEI,
    gas: int = 21_000,
    data: bytes = b"",
) -> tuple[bytes, str]:
    """(raw, 0x-hash) of a signed transfer (EIP-1559, or EIP-155 legacy)."""
    tx: dict[str, Any] = {
        "chainId": chain_id,
        "nonce": nonce,
        "to": to_checksum_address(to),
        "value": value,
        "gas": gas,
        "data": data,
    }
    if dynamic:
        tx.update(type=2, maxFeePerGas=gas_price, maxPriorityFeePerGas=gas_price)
    else:
        tx["gasPrice"] = gas_price
    signed = account.sign_transaction(tx)
    return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()


def genesis_doc(
    accounts: list[LocalAccount], *, chain_id: int = CHAIN_ID, balance: int = 10**6 * ETHER
) -> dict[str, Any]:
    return {
        "chain_id": chain_id,
        "timestamp": int(time.time()) - 60,
        "alloc": {a.address: {"balance": str(balance)} for a in accounts},
    }


def init_home(home: Path, genesis: dict[str, Any]) -> None:
    """`cmt init --home HOME --genesis FILE` (in-process, through click)."""
    genesis_file = home.parent / f"{home.name}-genesis.json"
    genesis_file.write_text(json.dumps(genesis))
    result = CliRunner().invoke(
        cli,
        ["init", "--home", str(home), "--genesis", str(genesis_file)],
    )
    assert result.exit_code == 0, result.output
    assert (home / "config.toml").is_file() and (home / "genesis.json").is_file()


# --------------------------------------------------------------------------- processes


# A "warm spare": a process that imports everything `cmt` needs, then waits for one line on
# stdin holding the JSON list of `cmt` arguments and runs the real `cmt` entry point with them.
# It is the same code path as the `cmt` script, minus the seconds of imports (py-evm, py_ecc)
# paid while an earlier node still runs: tests restarting a node many times use it.
SPARE_CODE = """\
import json, sys
import cybermiles.cli.main, cybermiles.cli.run, cybermiles.node.node, cybermiles.rpc.server
line = sys.stdin.readline()
if not line.strip():
    sys.exit(0)
sys.argv = ["cmt", *json.loads(line)]
cybermiles.cli.main.main()
"""


class CmtProcess:
    """One `cmt ...` child process in its own process group; output goes to ``log_path``."""

    def __init__(self, argv: list[str], log_path: Path, *, spare: bool = False) -> None:
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in wait()/kill()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if spare else subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env(),
        )
        self.pid = self.proc.pid

    def go(self, *args: str) -> None:
        """Start a warm spare as `cmt ARGS`."""
        assert self.proc.stdin is not None, "not a spare"
        self.argv = ["cmt(spare)", *args]
        self.proc.stdin.write((json.dumps(list(args)) + "\n").encode())
        self.proc.stdin.close()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process group, unless the process was already reaped (then its
        id may belong to someone else)."""
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.returncode is not None:
                self._log.close()

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self._log.close()

    def wait_rpc(self, url: str, timeout: float = 60.0) -> Rpc:
        """Wait until ``url`` answers eth_blockNumber; fail early if the process exits."""
        rpc = Rpc(url)
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise AssertionError(
                    f"{' '.join(self.argv)} exited with {self.proc.returncode} before its RPC "
                    f"answered:\n{self.tail()}"
                )
            try:
                rpc.block_number()
                return rpc
            except (OSError, http.client.HTTPException):
                rpc.close()
            if time.monotonic() > deadline:
                raise AssertionError(f"RPC at {url} not up within {timeout}s:\n{self.tail()}")
            time.sleep(0.05)


class Processes:
    """Spawns `cmt` processes and guarantees they are all killed at teardown."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[CmtProcess] = []

    def spawn(self, *args: str, name: str = "cmt") -> CmtProcess:
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        proc = CmtProcess(cmt_argv(*args), log_path)
        self.started.append(proc)
        return proc

    def spare(self, name: str = "spare") -> CmtProcess:
        """A warm spare (see ``SPARE_CODE``); start it with ``go(*cmt_args)``."""
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        proc = CmtProcess([sys.executable, "-c", SPARE_CODE], log_path, spare=True)
        self.started.append(proc)
        return proc

    def node(self, home: Path, port: int, *extra: str, name: str = "node") -> CmtProcess:
        return self.spawn(
            "node",
            "--home",
            str(home),
            "--rpc.addr",
            "127.0.0.1",
            "--rpc.port",
            str(port),
            *extra,
            name=name,
        )

    def cleanup(self) -> None:
        for proc in self.started:
            proc.kill()


def startup_head(output: str) -> tuple[int, str, str]:
    """(number, hash prefix, state-root prefix) from the node's last "chain N at block" line."""
    matches = re.findall(
        r"chain \d+ at block (\d+) \(0x([0-9a-f]+)\), state root 0x([0-9a-f]+)", output
    )
    assert matches, f"no startup line in the node's output:\n{output[-3000:]}"
    number, block_hash, root = matches[-1]
    return int(number), block_hash, root
