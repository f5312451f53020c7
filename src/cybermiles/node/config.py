"""Node configuration: ``<home>/config.toml``, written by ``cmt init``.

Layout of a home directory::

    config.toml    this file
    genesis.json   the chain's genesis
    data/          LMDB database (blocks, state, indexes)
    keystore/      encrypted account keys (keystore v3)
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

DEFAULT_HOME = Path("~/.cybermiles").expanduser()
CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
DATA_DIR = "data"
KEYSTORE_DIR = "keystore"


class ConfigError(ValueError):
    """The config file is missing, unreadable or has an invalid field (named in the message)."""


@dataclass(slots=True)
class RpcConfig:
    addr: str = "127.0.0.1"
    port: int = 8545
    cors: list[str] = field(default_factory=list)
    max_batch: int = 1000
    max_request_bytes: int = 5 * 1024 * 1024


@dataclass(slots=True)
class MiningConfig:
    """``block_time`` 0 means automine: one block per transaction, as Hardhat does."""

    block_time: float = 0.0
    max_block_txs: int = 10_000


@dataclass(slots=True)
class NodeConfig:
    moniker: str = "node"
    archive: bool = False
    log_level: str = "info"
    rpc: RpcConfig = field(default_factory=RpcConfig)
    mining: MiningConfig = field(default_factory=MiningConfig)

    def to_toml(self) -> str:
        return tomli_w.dumps(asdict(self))


def _section(cls: type, data: Any, name: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"[{name}]: expected a table")
    known = {f.name: f for f in fields(cls)}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}: unknown setting")
        default = getattr(cls(), key)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{name}.{key}: expected true or false")
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, type(default)) or (
            isinstance(value, bool) and not isinstance(default, bool)
        ):
            raise ConfigError(f"{name}.{key}: expected {type(default).__name__}, got {value!r}")
    return cls(**data)


def parse_config(data: dict[str, Any]) -> NodeConfig:
    top = {k: v for k, v in data.items() if k not in ("rpc", "mining")}
    config = _section(NodeConfig, top, "node")
    config.rpc = _section(RpcConfig, data.get("rpc", {}), "rpc")
    config.mining = _section(MiningConfig, data.get("mining", {}), "mining")
    if not 0 <= config.rpc.port <= 65535:
        raise ConfigError(f"rpc.port: {config.rpc.port} is not a TCP port")
    if config.mining.block_time < 0:
        raise ConfigError("mining.block_time: must be >= 0 (0 = automine)")
    if config.mining.max_block_txs < 1:
        raise ConfigError("mining.max_block_txs: must be >= 1")
    return config


def load_config(home: Path) -> NodeConfig:
    path = home / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: run `cmt init --home {home}` first") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return parse_config(data)


def write_config(home: Path, config: NodeConfig) -> None:
    (home / CONFIG_FILE).write_text(config.to_toml())
