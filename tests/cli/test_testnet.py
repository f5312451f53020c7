"""`cmt testnet init|start`: the homes it writes and the processes it runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from eth_account import Account

from cybermiles.bench.network import free_port_range
from cybermiles.chain.genesis import load_genesis
from cybermiles.cli.main import cli
from cybermiles.cli.testnet import OWNER_PASSWORD_FILE, TESTNET_PARAMS
from cybermiles.consensus.beacon import HashOnion, onion_seed
from cybermiles.node.config import load_config
from cybermiles.node.keys import load_validator_key
from cybermiles.p2p.keys import load_node_key, node_id_of, node_key_path

CMT_SCRIPT = Path(sys.executable).with_name("cmt")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def init(home: Path, n: int, *extra: str) -> Result:
    p2p = free_port_range(n)
    rpc = free_port_range(n)
    while set(range(p2p, p2p + n)) & set(range(rpc, rpc + n)):
        rpc = free_port_range(n)
    return run(
        "testnet",
        "init",
        "--validators",
        str(n),
        "--home",
        str(home),
        "--base-port",
        str(p2p),
        "--rpc-base-port",
        str(rpc),
        *extra,
    )


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("tn3")
    result = init(home, 3, "--accounts", "4")
    assert result.exit_code == 0, result.output
    return home


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- init


def test_init_writes_consistent_homes(three: Path) -> None:
    homes = [three / f"node{i}" for i in range(3)]
    assert sorted(p.name for p in three.iterdir()) == ["node0", "node1", "node2", "testnet.json"]
    genesis_bytes = {(h / "genesis.json").read_bytes() for h in homes}
    assert len(genesis_bytes) == 1, "genesis.json differs between homes"
    genesis = load_genesis(homes[0] / "genesis.json")
    assert genesis.chain_id == 19
    assert len(genesis.validators) == 3
    manifest = json.loads((three / "testnet.json").read_text())
    by_pub_key = {v.pub_key: v for v in genesis.validators}

    node_ids = [node_id_of(load_node_key(node_key_path(h))) for h in homes]
    assert len(set(node_ids)) == 3
    configs = [load_config(h) for h in homes]
    for i, (h, config) in enumerate(zip(homes, configs, strict=True)):
        # consensus key matches the genesis validator named after the node
        key = load_validator_key(h)
        assert key is not None
        validator = by_pub_key[key.pub_key]
        assert validator.name == f"node{i}"
        assert validator.beacon_commitment and len(validator.beacon_commitment) == 32
        # peers: every other node by id, at its p2p port
        assert config.consensus.enabled is True
        config.consensus.timeout_config()
        expected = {f"{node_ids[j]}@{configs[j].p2p.listen_addr}" for j in range(3) if j != i}
        assert set(config.p2p.persistent_peers) == expected
        assert config.p2p.listen_addr.startswith("127.0.0.1:")
        assert config.mining.block_time > 0
        entry = manifest["nodes"][i]
        assert entry["node_id"] == node_ids[i]
        assert entry["rpc"] == f"http://127.0.0.1:{config.rpc.port}"
        assert entry["pub_key"] == "0x" + key.pub_key.hex()
        # owner: keystore decrypts with the password file and is the funded validator owner
        password = (h / OWNER_PASSWORD_FILE).read_text().strip()
        [keyfile] = list((h / "keystore").iterdir())
        owner = Account.from_key(Account.decrypt(json.loads(keyfile.read_text()), password))
        assert validator.address == bytes.fromhex(owner.address[2:])
        assert entry["owner"] == owner.address
        assert genesis.alloc[validator.address].balance > 0
        # private files
        for private in (
            node_key_path(h),
            h / "config" / "priv_validator_key.json",
            h / OWNER_PASSWORD_FILE,
            keyfile,
        ):
            assert mode(private) == 0o600, private
    ports = [c.rpc.port for c in configs] + [int(c.p2p.listen_addr.split(":")[1]) for c in configs]
    assert len(set(ports)) == 6
    # equal stakes and comp rates; short testnet periods; the 4 test accounts funded
    assert len({v.max_amount for v in genesis.validators}) == 1
    assert len({v.comp_rate for v in genesis.validators}) == 1
    for name in ("epoch_blocks", "unstake_waiting_period", "proposal_expire_period"):
        assert getattr(genesis.params, name) == TESTNET_PARAMS[name]
    Account.enable_unaudited_hdwallet_features()
    first = Account.from_mnemonic(
        "test test test test test test test test test test test junk",
        account_path="m/44'/60'/0'/0/3",
    )
    assert bytes.fromhex(first.address[2:]) in genesis.alloc
    assert len(genesis.alloc) >= 3 + 4


def test_beacon_commitment_is_the_onion_tip(three: Path) -> None:
    key = load_validator_key(three / "node1")
    assert key is not None
    genesis = load_genesis(three / "node1" / "genesis.json")
    tip = HashOnion(onion_seed(key.seed, 0)).tip
    [validator] = [v for v in genesis.validators if v.pub_key == key.pub_key]
    assert validator.beacon_commitment == tip


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert init(tmp_path, 1, "--accounts", "0").exit_code == 0
    before = (tmp_path / "node0" / "config" / "node_key.json").read_text()
    result = init(tmp_path, 1)
    assert result.exit_code == 1
    assert "--force" in result.output
    assert (tmp_path / "node0" / "config" / "node_key.json").read_text() == before
    result = init(tmp_path, 1, "--accounts", "0", "--force")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "node0" / "config" / "node_key.json").read_text() != before


@pytest.mark.parametrize("n", ["0", "-1", "65", "two"])
def test_init_bad_validator_count(tmp_path: Path, n: str) -> None:
    result = run("testnet", "init", "--validators", n, "--home", str(tmp_path / "tn"))
    assert result.exit_code != 0
    assert "--validators" in result.output or "validators" in result.output.lower()
    assert not (tmp_path / "tn" / "node0").exists()


def test_init_overlapping_ports(tmp_path: Path) -> None:
    result = run(
        "testnet", "init", "--validators", "3", "--home", str(tmp_path),
        "--base-port", "30000", "--rpc-base-port", "30002",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "overlap" in result.output


def test_start_without_init(tmp_path: Path) -> None:
    result = run("testnet", "start", "--home", str(tmp_path), "--duration", "1")
    assert result.exit_code == 1
    assert "cmt testnet init" in result.output


# --------------------------------------------------------------------------- start


def cmt(*args: str) -> list[str]:
    if CMT_SCRIPT.exists():
        return [str(CMT_SCRIPT), *args]
    return [sys.executable, "-c", "from cybermiles.cli.main import main; main()", *args]


def start(home: Path, *args: str, timeout: float = 240) -> tuple[int, dict[str, Any], str]:
    env = dict(os.environ)
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.Popen(
        cmt("testnet", "start", "--home", str(home), "--json", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"testnet start hung:\n{err.decode()[-3000:]}") from None
    lines = [line for line in out.decode().splitlines() if line.strip()]
    assert lines, err.decode()[-3000:]
    return proc.returncode, json.loads(lines[-1]), err.decode()


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("tn2")
    result = init(home, 2, "--accounts", "4")
    assert result.exit_code == 0, result.output
    return home


def test_start_runs_nodes_and_stops_cleanly(two: Path) -> None:
    code, summary, err = start(two, "--duration", "5", "--load", "4")
    assert code == 0, err[-3000:]
    assert summary["clean_stop"] is True
    assert len(summary["nodes"]) == 2
    for node in summary["nodes"]:
        assert node["answered"] is True, err[-3000:]
        assert node["exit_code"] == 0
        assert node["height"] is not None and node["height"] >= node["first_height"] >= 0
        assert node["peers"] is not None and node["peers"] >= 0
        assert_gone(node["pid"])
        log = (two / node["node"] / "node.log").read_text()
        assert "stopped cleanly" in log
    # Today each node produces its own chain at 1 s blocks; with consensus they share one.
    assert max(n["height"] - n["first_height"] for n in summary["nodes"]) >= 1
    load = summary["load"]
    assert load["tps"] == 4 and load["sent"] > 0 and load["rejected"] == 0
    assert 0 <= load["committed"] <= load["sent"]
    assert "height" in err and "node0" in err  # the status table went to stderr


def test_start_shows_a_dead_child(two: Path, tmp_path: Path) -> None:
    home = tmp_path / "tn"
    shutil.copytree(two, home, ignore=shutil.ignore_patterns("data", "node.log"))
    config = home / "node1" / "config.toml"
    config.write_text('bogus_setting = "x"\n' + config.read_text())
    tomllib.loads(config.read_text())  # still TOML; cmt node refuses the unknown setting
    code, summary, err = start(home, "--duration", "3")
    assert code == 1
    node0, node1 = summary["nodes"]
    assert summary["clean_stop"] is False
    assert node1["exit_code"] == 1 and node1["answered"] is False
    assert node0["exit_code"] == 0 and node0["answered"] is True
    assert "exited (1)" in err
    assert "bogus_setting" in err  # the tail of its log
    for node in summary["nodes"]:
        assert_gone(node["pid"])
