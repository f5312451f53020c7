"""Options and helpers shared by the `cmt` commands."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from rich.console import Console
from rich.logging import RichHandler

from cybermiles.node.config import DEFAULT_HOME

console = Console(stderr=True)

home_option = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
    help="Node home directory (config.toml, genesis.json, data/, keystore/).",
)


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False, markup=False)],
        force=True,
    )


def fail(message: str) -> None:
    """Abort the command with a clear message and exit status 1."""
    raise click.ClickException(message)
