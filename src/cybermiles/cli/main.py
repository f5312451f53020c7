"""The `cmt` command line."""

from __future__ import annotations

import platform

import click

import cybermiles
from cybermiles.cli.account import account_group
from cybermiles.cli.bench import bench_group
from cybermiles.cli.devnet import devnet_command
from cybermiles.cli.init import init_command
from cybermiles.cli.node_cmd import node_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """CyberMiles node: an Ethereum-compatible DPoS + BFT chain for e-commerce.

    Quick start: `cmt devnet` starts a local chain with funded accounts on
    http://127.0.0.1:8545 (MetaMask, ethers, web3.py, Hardhat work against it).
    """


@cli.command("version")
def version_command() -> None:
    """Print the version."""
    click.echo(f"cmt {cybermiles.__version__} (python {platform.python_version()})")


cli.add_command(init_command)
cli.add_command(node_command)
cli.add_command(devnet_command)
cli.add_command(account_group)
cli.add_command(bench_group)


def main() -> None:
    cli()
