"""`cmt init`: create a node home (config.toml + genesis.json)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click

from cybermiles.chain.errors import GenesisError
from cybermiles.chain.genesis import Genesis, load_genesis, parse_genesis, write_genesis
from cybermiles.cli.common import console, fail, home_option
from cybermiles.node.config import (
    CONFIG_FILE,
    DATA_DIR,
    GENESIS_FILE,
    KEYSTORE_DIR,
    NodeConfig,
    write_config,
)


def default_genesis(
    chain_id: int,
    alloc: dict | None = None,
    validators: list | None = None,
    params: dict | None = None,
) -> Genesis:
    return parse_genesis(
        {
            "chain_id": chain_id,
            "timestamp": int(time.time()),
            "alloc": alloc or {},
            "validators": validators or [],
            "params": params or {},
        }
    )


def create_home(home: Path, genesis: Genesis, config: NodeConfig, *, force: bool = False) -> None:
    """Write a fresh home; refuse to overwrite an existing chain unless ``force``."""
    if (home / CONFIG_FILE).exists() or (home / DATA_DIR).exists():
        if not force:
            fail(
                f"{home} already holds a node; "
                "pass --force to replace it (its chain data is deleted)"
            )
        shutil.rmtree(home / DATA_DIR, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    (home / KEYSTORE_DIR).mkdir(exist_ok=True)
    write_genesis(genesis, home / GENESIS_FILE)
    write_config(home, config)


@click.command("init")
@home_option
@click.option(
    "--chain-id",
    type=click.IntRange(1, 2**53 - 1),
    default=1234,
    show_default=True,
    help="Chain id (devnet 1234, testnet 19, mainnet-like 18). Ignored with --genesis.",
)
@click.option(
    "--genesis",
    "genesis_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Use this genesis file (validated) instead of generating one.",
)
@click.option("--force", is_flag=True, help="Replace an existing home (deletes its chain data).")
def init_command(home: Path, chain_id: int, genesis_file: Path | None, force: bool) -> None:
    """Create a node home with config.toml and genesis.json."""
    try:
        genesis = load_genesis(genesis_file) if genesis_file else default_genesis(chain_id)
    except GenesisError as exc:
        fail(f"invalid genesis: {exc}")
    config = NodeConfig()
    create_home(home, genesis, config, force=force)
    console.print(f"Initialized chain {genesis.chain_id} in {home}")
