"""The `cmt` command line.

Subcommands are imported only when invoked, so `cmt --help` and `cmt version` start at once
without loading py-evm and eth_account.
"""

from __future__ import annotations

import importlib
import platform
from typing import Any

import click

import cybermiles

# name -> (module, attribute, one-line help shown by `cmt --help`)
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "account": ("cybermiles.cli.account", "account_group", "Manage keystore accounts."),
    "bench": ("cybermiles.cli.bench", "bench_group", "Run performance benchmarks."),
    "devnet": (
        "cybermiles.cli.devnet",
        "devnet_command",
        "Start a local development chain with funded, unlocked accounts.",
    ),
    "gov": (
        "cybermiles.cli.gov",
        "gov_group",
        "Governance: propose, vote, list proposals and parameters (over JSON-RPC).",
    ),
    "init": ("cybermiles.cli.init", "init_command", "Create a node home (config + genesis)."),
    "node": ("cybermiles.cli.node_cmd", "node_command", "Run a node from its home directory."),
    "stake": (
        "cybermiles.cli.stake",
        "stake_group",
        "Staking: declare candidacies, delegate, withdraw, list validators (over JSON-RPC).",
    ),
    "testnet": (
        "cybermiles.cli.testnet",
        "testnet_group",
        "Write and run a local multi-validator network on loopback.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, attribute, _ = LAZY_COMMANDS[cmd_name]
            command: Any = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, _, help_text) in LAZY_COMMANDS.items()]
        rows += [(name, cmd.get_short_help_str()) for name, cmd in self.commands.items()]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """CyberMiles node: an Ethereum-compatible DPoS + BFT chain for e-commerce.

    Quick start: `cmt devnet` starts a local chain with funded accounts on
    http://127.0.0.1:8545 (MetaMask, ethers, web3.py, Hardhat work against it).
    """


@cli.command("version")
def version_command() -> None:
    """Print the version."""
    click.echo(f"cmt {cybermiles.__version__} (python {platform.python_version()})")


def main() -> None:
    cli()
