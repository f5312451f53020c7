"""`cmt devnet`: a one-validator development chain with funded, unlocked accounts.

Accounts come from the well-known test mnemonic, exactly as Hardhat and Anvil derive them
(m/44'/60'/0'/0/i), so tools and tutorials work unchanged. Never use these keys elsewhere.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click
from eth_account import Account

from cybermiles.chain.params import BASIS_POINTS, CMT
from cybermiles.cli.common import console, setup_logging
from cybermiles.cli.init import create_home, default_genesis
from cybermiles.cli.run import run_node
from cybermiles.crypto.ed25519 import private_key_from_seed, public_key_bytes
from cybermiles.crypto.keccak import keccak256
from cybermiles.node.config import CONFIG_FILE, NodeConfig, load_config
from cybermiles.node.node import Node

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_CHAIN_ID = 1234
# The devnet's one validator: dev account #0 operates it with this consensus key.
DEV_VALIDATOR_SEED = keccak256(b"cybermiles devnet validator")
DEV_VALIDATOR_MAX_AMOUNT = 10_000_000 * CMT  # self-stake 1,000,000 CMT at the 10% ratio
# Devnet parameters: elections every block and short periods, so staking and governance can be
# tried in minutes; everything else keeps the defaults of docs/staking.md.
DEV_PARAMS = {
    "epoch_blocks": 1,
    "unstake_waiting_period": 10,
    "proposal_expire_period": 20,
    "jail_period": 10,
    "proposal_deposit": str(1 * CMT),
}


def dev_validator(operator: bytes) -> dict:
    """Genesis entry of the devnet validator operated by ``operator``."""
    pub_key = public_key_bytes(private_key_from_seed(DEV_VALIDATOR_SEED))
    return {
        "address": "0x" + operator.hex(),
        "pub_key": "0x" + pub_key.hex(),
        "max_amount": str(DEV_VALIDATOR_MAX_AMOUNT),
        "comp_rate": "0.2",
        "name": "devnet",
    }


def dev_keys(count: int) -> list[tuple[bytes, bytes]]:
    """(address, private key) of the first ``count`` accounts of the test mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    out = []
    for i in range(count):
        acct = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        out.append((bytes.fromhex(acct.address[2:]), bytes(acct.key)))
    return out


def print_accounts(keys: list[tuple[bytes, bytes]], balance_cmt: int) -> None:
    out = click.echo
    out("Accounts")
    out("========")
    out("")
    out("WARNING: These accounts, and their private keys, are publicly known.")
    out("Any funds sent to them on a public chain WILL BE LOST.")
    out("")
    for i, (_address, key) in enumerate(keys):
        checksum = Account.from_key(key).address
        out(f"Account #{i}: {checksum} ({balance_cmt} CMT)")
        out(f"Private Key: 0x{key.hex()}")
        out("")
    out(f"Mnemonic: {DEV_MNEMONIC}")
    out("")


@click.command("devnet")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the chain in this home (reused if it exists). Default: a fresh "
    "temporary chain deleted on exit.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="RPC listen address.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8545,
    show_default=True,
    help="RPC port (HTTP and WebSocket).",
)
@click.option(
    "--block-time",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds between blocks; 0 = automine (one block per transaction).",
)
@click.option(
    "--chain-id", type=click.IntRange(1, 2**53 - 1), default=DEV_CHAIN_ID, show_default=True
)
@click.option(
    "--accounts",
    "count",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Number of funded dev accounts.",
)
@click.option(
    "--balance",
    type=click.IntRange(0),
    default=10_000,
    show_default=True,
    help="CMT given to each dev account.",
)
@click.option(
    "--allow-unlimited-contract-size",
    is_flag=True,
    default=False,
    help="Lift the EIP-170 (24 KiB code) and EIP-3860 (48 KiB initcode) size limits in blocks.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def devnet_command(
    home: Path | None,
    host: str,
    port: int,
    block_time: float,
    chain_id: int,
    count: int,
    balance: int,
    allow_unlimited_contract_size: bool,
    log_level: str,
) -> None:
    """Start a local development chain with funded, unlocked accounts (Ctrl-C stops it)."""
    setup_logging(log_level)
    keys = dev_keys(count)
    temporary = home is None
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="cmt-devnet-"))
    try:
        if (home / CONFIG_FILE).exists():
            config = load_config(home)
        else:
            alloc = {"0x" + a.hex(): {"balance": str(balance * CMT)} for a, _ in keys}
            genesis = default_genesis(chain_id, alloc, [dev_validator(keys[0][0])], DEV_PARAMS)
            config = NodeConfig(moniker="devnet")
            create_home(home, genesis, config)
        config.rpc.addr, config.rpc.port = host, port
        config.mining.block_time = block_time
        config.archive = True  # evm_revert rewinds with the reverse diffs of every block
        if "*" not in config.rpc.cors:
            config.rpc.cors.append("*")
        node = Node(
            home,
            config,
            dev=True,
            dev_keys=dict(keys),
            allow_unlimited_contract_size=allow_unlimited_contract_size,
        )

        def started(url: str) -> None:
            click.echo(f"Started HTTP and WebSocket JSON-RPC server at {url}/")
            click.echo(
                f"Chain id: {node.chain_id}   Home: {home}"
                f"{' (temporary)' if temporary else ''}   "
                f"Mining: {'automine' if block_time == 0 else f'every {block_time}s'}"
            )
            ratio = node.genesis.params.self_staking_ratio
            self_stake = DEV_VALIDATOR_MAX_AMOUNT * ratio // BASIS_POINTS
            click.echo(
                "Validator: Account #0 (self-stake "
                f"{self_stake // CMT:,} CMT; staking 0x…1000, "
                "governance 0x…1001; see `cmt stake --help`)"
            )
            click.echo("")
            print_accounts(keys, balance)

        run_node(node, on_started=started)
    finally:
        if temporary:
            shutil.rmtree(home, ignore_errors=True)
            console.print("temporary devnet removed")
