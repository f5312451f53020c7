"""`cmt node`: run a node from its home directory."""

from __future__ import annotations

from pathlib import Path

import click

from cybermiles.chain.errors import ChainError
from cybermiles.cli.common import fail, home_option, setup_logging
from cybermiles.cli.run import run_node
from cybermiles.node.accounts import (
    UnlockError,
    parse_unlock_list,
    read_passwords,
    unlock_keystore,
)
from cybermiles.node.config import KEYSTORE_DIR, ConfigError, load_config
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
@click.option(
    "--unlock",
    default=None,
    metavar="ADDR[,ADDR]",
    help="Unlock these keystore accounts (addresses or `cmt account list` indexes) for "
    "eth_sendTransaction and signing.",
)
@click.option(
    "--password",
    "password_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File with the passwords for --unlock, one line per account (the last line serves "
    "the rest).",
)
def node_command(
    home: Path,
    rpc_addr: str | None,
    rpc_port: int | None,
    block_time: float | None,
    archive: bool | None,
    unlock: str | None,
    password_file: Path | None,
) -> None:
    """Run the node in the foreground (Ctrl-C or SIGTERM stops it cleanly)."""
    try:
        config = load_config(home)
    except ConfigError as exc:
        fail(str(exc))
    unlocked = unlock_accounts(home, unlock, password_file)
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
        node = Node(home, config, unlocked_keys=unlocked)
    except (ChainError, ValueError) as exc:
        fail(str(exc))
    run_node(node)


def unlock_accounts(
    home: Path, unlock: str | None, password_file: Path | None
) -> dict[bytes, bytes]:
    """Decrypt the --unlock accounts (node.accounts rules); fail clearly on any problem."""
    if unlock is None:
        if password_file is not None:
            fail("--password needs --unlock")
        return {}
    if password_file is None:
        fail("--unlock needs --password FILE (the node runs unattended and does not prompt)")
    try:
        return unlock_keystore(
            home / KEYSTORE_DIR, parse_unlock_list(unlock), read_passwords(password_file)
        )
    except UnlockError as exc:
        fail(str(exc))
        raise  # unreachable: fail() raises
