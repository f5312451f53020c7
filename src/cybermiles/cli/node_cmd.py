"""`cmt node`: run a node from its home directory."""

from __future__ import annotations

from pathlib import Path

import click

from cybermiles.chain.errors import ChainError
from cybermiles.cli.common import fail, home_option, setup_logging
from cybermiles.cli.run import run_node
from cybermiles.node.config import ConfigError, load_config
from cybermiles.node.node import Node


@click.command("node")
@home_option
@click.option(
    "--rpc.addr", "rpc_addr", default=None, help="RPC listen address (default from config)."
)
@click.option(
    "--rpc.port",
    "rpc_port",
    type=click.IntRange(0, 65535),
    default=None,
    help="RPC port (default from config, 8545).",
)
@click.option(
    "--block-time",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds between blocks; 0 = automine (default from config).",
)
@click.option("--archive", is_flag=True, default=None, help="Keep the state of every block.")
def node_command(
    home: Path,
    rpc_addr: str | None,
    rpc_port: int | None,
    block_time: float | None,
    archive: bool | None,
) -> None:
    """Run the node in the foreground (Ctrl-C or SIGTERM stops it cleanly)."""
    try:
        config = load_config(home)
    except ConfigError as exc:
        fail(str(exc))
    setup_logging(config.log_level)
    if rpc_addr is not None:
        config.rpc.addr = rpc_addr
    if rpc_port is not None:
        config.rpc.port = rpc_port
    if block_time is not None:
        config.mining.block_time = block_time
    if archive:
        config.archive = True
    try:
        node = Node(home, config)
    except (ChainError, ValueError) as exc:
        fail(str(exc))
    run_node(node)
