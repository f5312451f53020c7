"""`cmt stake`: candidacies, delegations and the validator list, over a node's JSON-RPC.

Transactions go through the node's ``cmt_*`` methods, signed by the node for ``--from`` (a dev
account of `cmt devnet`, or an account unlocked with `cmt node --unlock`); each command waits
for the receipt and prints the outcome. Amounts are CMT (``1000``, ``0.5``) or wei
(``1500wei``); rules and parameters: docs/staking.md.
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from cybermiles.cli.rpc_client import (
    RpcClient,
    address_callback,
    cmt_amount,
    format_cmt,
    format_rate,
    height_option,
    json_option,
    print_table,
    query,
    rpc_option,
    send_and_wait,
    table_cmt,
    tx_options,
)

DESCRIPTION_FIELDS = ("name", "website", "location", "email", "profile")


def _description_options(command: Any) -> Any:
    for field in reversed(DESCRIPTION_FIELDS):
        command = click.option(f"--{field}", default=None, help=f"Description: {field}.")(command)
    return command


def _description(values: dict[str, str | None]) -> dict[str, str]:
    return {field: values[field] for field in DESCRIPTION_FIELDS if values.get(field) is not None}


@click.group("stake", context_settings={"help_option_names": ["-h", "--help"]})
def stake_group() -> None:
    """Stake CMT: declare a candidacy, delegate, withdraw, list validators.

    Talks to a running node over JSON-RPC (--rpc, default http://127.0.0.1:8545); transactions
    are signed by the node for --from. Amounts are in CMT (1000, 0.5) or wei (1500wei).

    \b
    On a devnet (`cmt devnet`; dev account #0 operates its one validator):
      cmt stake validators
      cmt stake delegate --from 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 \\
          0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 1000
      cmt stake delegator 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
    """


@stake_group.command("declare")
@tx_options
@click.option(
    "--pub-key",
    required=True,
    help="Ed25519 consensus public key: 0x + 64 hex digits (or base64).",
)
@click.option(
    "--max-amount",
    required=True,
    callback=cmt_amount,
    help="Most stake the candidate accepts, CMT. The self-stake sent is "
    "max-amount × self_staking_ratio (10% by default).",
)
@click.option(
    "--comp-rate",
    required=True,
    help='Share of its delegators\' rewards the candidate keeps: a fraction like "0.2".',
)
@_description_options
def declare_command(
    rpc_url: str,
    sender: str,
    timeout: float,
    pub_key: str,
    max_amount: int,
    comp_rate: str,
    **description: str | None,
) -> None:
    """Declare a candidacy for --from, sending the self-stake."""
    ratio = int(RpcClient(rpc_url).call("cmt_queryParams")["data"]["self_staking_ratio"])
    click.echo(f"self-stake: {format_cmt(max_amount * ratio // 10_000)}")
    args: dict[str, Any] = {
        "from": sender,
        "pubKey": pub_key,
        "maxAmount": str(max_amount),
        "compRate": comp_rate,
        "description": _description(description),
    }
    send_and_wait(rpc_url, "cmt_declareCandidacy", args, timeout)


@stake_group.command("update")
@tx_options
@click.option("--pub-key", default=None, help="New consensus public key (0x + 64 hex digits).")
@click.option(
    "--max-amount",
    default=None,
    callback=cmt_amount,
    help="New max amount, CMT; raising it sends the extra self-stake.",
)
@click.option("--comp-rate", default=None, help='New comp rate, a fraction like "0.2".')
@_description_options
def update_command(
    rpc_url: str,
    sender: str,
    timeout: float,
    pub_key: str | None,
    max_amount: int | None,
    comp_rate: str | None,
    **description: str | None,
) -> None:
    """Update --from's candidacy; options not given keep their current values.

    A changed description resets the candidate's verified flag.
    """
    args: dict[str, Any] = {"from": sender}
    if pub_key is not None:
        args["pubKey"] = pub_key
    if max_amount is not None:
        args["maxAmount"] = str(max_amount)
    if comp_rate is not None:
        args["compRate"] = comp_rate
    desc = _description(description)
    if desc:
        args["description"] = desc
    send_and_wait(rpc_url, "cmt_updateCandidacy", args, timeout)


@stake_group.command("delegate")
@tx_options
@click.argument("validator", callback=address_callback)
@click.argument("amount", callback=cmt_amount)
def delegate_command(
    rpc_url: str, sender: str, timeout: float, validator: str, amount: int
) -> None:
    """Stake AMOUNT (CMT) from --from on the candidate VALIDATOR (its owner address)."""
    click.echo(f"delegating {format_cmt(amount)} to {validator}")
    args = {"from": sender, "validatorAddress": validator, "amount": str(amount)}
    send_and_wait(rpc_url, "cmt_delegate", args, timeout)


@stake_group.command("withdraw")
@tx_options
@click.argument("validator", callback=address_callback)
@click.argument("amount", callback=cmt_amount)
def withdraw_command(
    rpc_url: str, sender: str, timeout: float, validator: str, amount: int
) -> None:
    """Start unbonding AMOUNT (CMT) of --from's stake on VALIDATOR.

    The CMT returns to --from automatically after unstake_waiting_period blocks.
    """
    args = {"from": sender, "validatorAddress": validator, "amount": str(amount)}
    send_and_wait(rpc_url, "cmt_withdraw", args, timeout)


@stake_group.command("validators")
@rpc_option
@height_option
@json_option
def validators_command(rpc_url: str, height: int | None, as_json: bool) -> None:
    """List every candidate: validators, backups and the others, by rank."""
    answer = query(rpc_url, "cmt_queryValidators", height=height, as_json=as_json)
    if answer is None:
        return
    candidates = sorted(answer["data"], key=lambda c: c["rank"])
    table = Table(title=f"Candidates at block {answer['height']}")
    for column, justify in (
        ("rank", "right"),
        ("address", "left"),
        ("name", "left"),
        ("state", "left"),
        ("shares", "right"),
        ("voting power", "right"),
        ("max", "right"),
        ("comp rate", "right"),
        ("active", "center"),
        ("verified", "center"),
        ("delegators", "right"),
    ):
        table.add_column(column, justify=justify, no_wrap=column in ("address", "shares"))
    for c in candidates:
        table.add_row(
            str(c["rank"]),
            c["owner_address"],
            c["description"].get("name", ""),
            c["state"],
            table_cmt(c["shares"]),
            table_cmt(c["voting_power"]),
            table_cmt(c["max_shares"]),
            format_rate(c["comp_rate"]),
            c["active"],
            c["verified"],
            str(c["num_of_delegators"]),
        )
    if candidates:
        print_table(table)
        click.echo("amounts in CMT; --json for exact wei")
    else:
        click.echo(f"no candidates at block {answer['height']}")


@stake_group.command("delegator")
@rpc_option
@height_option
@json_option
@click.argument("address", callback=address_callback)
def delegator_command(rpc_url: str, height: int | None, as_json: bool, address: str) -> None:
    """Show the delegations of ADDRESS."""
    answer = query(rpc_url, "cmt_queryDelegator", address, height=height, as_json=as_json)
    if answer is None:
        return
    rows = answer["data"]
    if not rows:
        click.echo(f"{address} has no delegations at block {answer['height']}")
        return
    table = Table(title=f"Delegations of {address} at block {answer['height']}")
    for column in (
        "validator",
        "shares",
        "delegated",
        "awards",
        "withdrawn",
        "unbonding",
        "slashed",
        "comp rate",
        "voting power",
    ):
        table.add_column(column, justify="left" if column == "validator" else "right", no_wrap=True)
    for d in rows:
        table.add_row(
            d["validator_address"],
            table_cmt(d["shares"]),
            table_cmt(d["delegate_amount"]),
            table_cmt(d["award_amount"]),
            table_cmt(d["withdraw_amount"]),
            table_cmt(d["pending_withdraw_amount"]),
            table_cmt(d["slash_amount"]),
            format_rate(d["comp_rate"]),
            table_cmt(d["voting_power"]),
        )
    print_table(table)
    click.echo("amounts in CMT; --json for exact wei")
