"""Node configuration: ``<home>/config.toml``, written by ``cmt init``.

Layout of a home directory::

    config.toml    this file
    genesis.json   the chain's genesis
    data/          LMDB database (blocks, state, indexes)
    keystore/      encrypted account keys (keystore v3)
    config/node_key.json              p2p identity (``cybermiles.p2p.keys``)
    config/priv_validator_key.json    consensus key of a validator (``cybermiles.node.keys``)
    data/priv_validator_state.json    its last sign state (double-sign protection)
    data/cs.wal/                      consensus write-ahead log (``[consensus] wal_dir``)

The ``[p2p]`` and ``[consensus]`` sections are optional: a config file without them loads with
the defaults (no listener is started and no consensus runs unless ``consensus.enabled``).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

DEFAULT_HOME = Path("~/.cybermiles").expanduser()
CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
DATA_DIR = "data"
KEYSTORE_DIR = "keystore"


DEFAULT_P2P_PORT = 26656
DEFAULT_WAL_DIR = "data/cs.wal"
TIMEOUT_PROFILES = ("default", "fast")


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
class P2PSection:
    """``[p2p]``: where the node listens and whom it dials (addresses ``node_id@host:port``).

    :meth:`to_p2p_config` gives the transport's :class:`cybermiles.p2p.peers.P2PConfig` (its
    other tunables keep their defaults).
    """

    listen_addr: str = f"127.0.0.1:{DEFAULT_P2P_PORT}"
    external_addr: str = ""
    persistent_peers: list[str] = field(default_factory=list)
    seeds: list[str] = field(default_factory=list)
    max_inbound: int = 40
    max_outbound: int = 10

    def to_p2p_config(self) -> Any:
        """The :class:`~cybermiles.p2p.peers.P2PConfig` for the switch."""
        from cybermiles.p2p.peers import P2PConfig

        return P2PConfig(
            listen_addr=self.listen_addr,
            external_addr=self.external_addr,
            persistent_peers=list(self.persistent_peers),
            seeds=list(self.seeds),
            max_inbound=self.max_inbound,
            max_outbound=self.max_outbound,
        )


@dataclass(slots=True)
class ConsensusSection:
    """``[consensus]``: whether this node runs BFT consensus, its timeouts and its WAL.

    ``timeouts`` is a profile name (``"default"``: CometBFT's defaults, ``"fast"``: its test
    profile) or a table of :class:`~cybermiles.consensus.timeouts.TimeoutConfig` fields in
    milliseconds, optionally with ``profile`` naming the values the others start from::

        [consensus.timeouts]
        profile = "fast"
        propose_ms = 200

    ``wal_dir`` is relative to the home unless absolute.
    """

    enabled: bool = False
    timeouts: str | dict[str, Any] = "default"
    wal_dir: str = DEFAULT_WAL_DIR

    def timeout_config(self) -> Any:
        """The :class:`~cybermiles.consensus.timeouts.TimeoutConfig` these settings describe."""
        return _timeout_config(self.timeouts)

    def wal_path(self, home: Path) -> Path:
        return Path(home) / Path(self.wal_dir).expanduser()


@dataclass(slots=True)
class NodeConfig:
    moniker: str = "node"
    archive: bool = False
    log_level: str = "info"
    rpc: RpcConfig = field(default_factory=RpcConfig)
    mining: MiningConfig = field(default_factory=MiningConfig)
    p2p: P2PSection = field(default_factory=P2PSection)
    consensus: ConsensusSection = field(default_factory=ConsensusSection)

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


def _timeout_config(value: Any) -> Any:
    """``[consensus] timeouts`` as a TimeoutConfig; ConfigError names a bad entry."""
    from cybermiles.consensus import timeouts as timeouts_module

    profiles = {"default": timeouts_module.DEFAULT, "fast": timeouts_module.FAST}
    if isinstance(value, str):
        if value not in profiles:
            raise ConfigError(
                f"consensus.timeouts: unknown profile {value!r} (expected "
                f"{' or '.join(repr(p) for p in TIMEOUT_PROFILES)}, or a table of *_ms values)"
            )
        return profiles[value]
    if not isinstance(value, dict):
        raise ConfigError(f"consensus.timeouts: expected a profile name or a table, got {value!r}")
    values = dict(value)
    profile = values.pop("profile", "default")
    if profile not in profiles:
        raise ConfigError(f"consensus.timeouts.profile: unknown profile {profile!r}")
    known = {f.name for f in fields(timeouts_module.TimeoutConfig)}
    for key, ms in values.items():
        if key not in known:
            raise ConfigError(
                f"consensus.timeouts.{key}: unknown setting (known: {', '.join(sorted(known))})"
            )
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
            raise ConfigError(
                f"consensus.timeouts.{key}: expected a non-negative integer (ms), got {ms!r}"
            )
    return replace(profiles[profile], **values)


def _check_p2p(p2p: P2PSection) -> None:
    from cybermiles.p2p.peers import NetAddress

    def address(name: str, text: str, *, require_id: bool) -> None:
        try:
            NetAddress.parse(text, require_id=require_id)
        except ValueError as exc:
            raise ConfigError(f"p2p.{name}: {exc}") from None

    address("listen_addr", p2p.listen_addr, require_id=False)
    if p2p.external_addr:
        address("external_addr", p2p.external_addr, require_id=False)
    for name in ("persistent_peers", "seeds"):
        entries = getattr(p2p, name)
        for index, entry in enumerate(entries):
            if not isinstance(entry, str):
                raise ConfigError(f"p2p.{name}[{index}]: expected a string, got {entry!r}")
            address(f"{name}[{index}]", entry, require_id=True)
    for name in ("max_inbound", "max_outbound"):
        if getattr(p2p, name) < 0:
            raise ConfigError(f"p2p.{name}: must be >= 0")


def parse_config(data: dict[str, Any]) -> NodeConfig:
    sections = ("rpc", "mining", "p2p", "consensus")
    top = {k: v for k, v in data.items() if k not in sections}
    config = _section(NodeConfig, top, "node")
    config.rpc = _section(RpcConfig, data.get("rpc", {}), "rpc")
    config.mining = _section(MiningConfig, data.get("mining", {}), "mining")
    config.p2p = _section(P2PSection, data.get("p2p", {}), "p2p")
    _check_p2p(config.p2p)
    consensus = data.get("consensus", {})
    if isinstance(consensus, dict) and "timeouts" in consensus:
        consensus = dict(consensus)
        timeouts = consensus.pop("timeouts")
        config.consensus = _section(ConsensusSection, consensus, "consensus")
        _timeout_config(timeouts)  # validate
        config.consensus.timeouts = timeouts
    else:
        config.consensus = _section(ConsensusSection, consensus, "consensus")
    if not config.consensus.wal_dir:
        raise ConfigError("consensus.wal_dir: must not be empty")
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
