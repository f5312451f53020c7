"""`cmt gov`: governance proposals, votes and parameters, over a node's JSON-RPC.

Proposing needs stake (a candidate or a delegator) and a deposit (default: the
``proposal_deposit`` parameter); voting needs stake. Rules: docs/staking.md, "Governance".
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from cybermiles.cli.rpc_client import (
    address_callback,
    cmt_amount,
    format_cmt,
    height_option,
    json_option,
    print_table,
    query,
    rpc_option,
    send_and_wait,
    table_cmt,
    tx_options,
)
from cybermiles.crypto.keccak import keccak256

GOVERNANCE = "0x0000000000000000000000000000000000001001"
PROPOSED_TOPIC = "0x" + keccak256(b"Proposed(uint256,address,uint8,uint256)").hex()
ANSWERS = ("Y", "N", "A", "yes", "no", "abstain")
# Parameters that are wei amounts (shown in CMT in tables).
AMOUNT_PARAMS = frozenset({"min_gas_price", "min_staking_amount", "proposal_deposit"})


def deposit_option(command: Any) -> Any:
    return click.option(
        "--deposit",
        default=None,
        callback=cmt_amount,
        help="Deposit in CMT (default: the proposal_deposit parameter). Returned when the "
        "proposal passes or is rejected; lost when it expires without a quorum.",
    )(command)


def _propose(rpc_url: str, method: str, args: dict[str, Any], timeout: float) -> None:
    receipt = send_and_wait(rpc_url, method, args, timeout)
    for log in receipt.get("logs", []):
        topics = log.get("topics", [])
        if str(log.get("address", "")).lower() == GOVERNANCE and topics[:1] == [PROPOSED_TOPIC]:
            click.echo(f"proposal #{int(topics[1], 16)} created")


def _with_deposit(args: dict[str, Any], deposit: int | None) -> dict[str, Any]:
    if deposit is not None:
        args["deposit"] = str(deposit)
    return args


@click.group("gov", context_settings={"help_option_names": ["-h", "--help"]})
def gov_group() -> None:
    """Governance: propose parameter changes, fund transfers, upgrades; vote; list.

    Talks to a running node over JSON-RPC (--rpc, default http://127.0.0.1:8545); transactions
    are signed by the node for --from, which must have stake (a candidate or a delegator).

    \b
    On a devnet (`cmt devnet`; dev account #0 operates its one validator):
      cmt gov propose param --from 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 max_vals 21
      cmt gov vote --from 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 1 Y
      cmt gov list
      cmt gov params
    """


@gov_group.group("propose")
def propose_group() -> None:
    """Make a proposal (param, transfer, upgrade or text)."""


@propose_group.command("param")
@tx_options
@deposit_option
@click.option(
    "--height",
    type=click.IntRange(min=0),
    default=0,
    help="Apply at the end of this block, or when the proposal passes if that is later "
    "(default: when it passes).",
)
@click.argument("name")
@click.argument("value")
def propose_param_command(
    rpc_url: str,
    sender: str,
    timeout: float,
    deposit: int | None,
    height: int,
    name: str,
    value: str,
) -> None:
    """Propose setting parameter NAME to VALUE.

    VALUE is in the parameter's own unit (`cmt gov params` lists them): basis points for
    ratios, blocks for periods, wei for amounts, an address for verifier.
    """
    args = {"from": sender, "name": name, "value": value, "height": str(height)}
    _propose(rpc_url, "cmt_proposeChangeParam", _with_deposit(args, deposit), timeout)


@propose_group.command("transfer")
@tx_options
@deposit_option
@click.option("--reason", default="", help="Why the transfer is made.")
@click.argument("to", callback=address_callback)
@click.argument("amount", callback=cmt_amount)
def propose_transfer_command(
    rpc_url: str,
    sender: str,
    timeout: float,
    deposit: int | None,
    reason: str,
    to: str,
    amount: int,
) -> None:
    """Propose paying AMOUNT (CMT) from the community pool to TO."""
    args = {"from": sender, "transferTo": to, "amount": str(amount), "reason": reason}
    _propose(rpc_url, "cmt_proposeTransferFund", _with_deposit(args, deposit), timeout)


@propose_group.command("upgrade")
@tx_options
@deposit_option
@click.argument("name")
@click.argument("version")
@click.argument("height", type=click.IntRange(min=1))
def propose_upgrade_command(
    rpc_url: str,
    sender: str,
    timeout: float,
    deposit: int | None,
    name: str,
    version: str,
    height: int,
) -> None:
    """Propose a software upgrade: nodes not running VERSION stop before block HEIGHT."""
    args = {"from": sender, "name": name, "version": version, "height": str(height)}
    _propose(rpc_url, "cmt_proposeUpgrade", _with_deposit(args, deposit), timeout)


@propose_group.command("text")
@tx_options
@deposit_option
@click.argument("title")
@click.argument("text", default="")
def propose_text_command(
    rpc_url: str,
    sender: str,
    timeout: float,
    deposit: int | None,
    title: str,
    text: str,
) -> None:
    """Propose a text (a signalling proposal with no effect on the chain)."""
    args = {"from": sender, "title": title, "text": text}
    _propose(rpc_url, "cmt_proposeText", _with_deposit(args, deposit), timeout)


@gov_group.command("vote")
@tx_options
@click.argument("proposal_id", metavar="ID", type=click.IntRange(min=1))
@click.argument("answer", type=click.Choice(ANSWERS, case_sensitive=False))
def vote_command(rpc_url: str, sender: str, timeout: float, proposal_id: int, answer: str) -> None:
    """Vote ANSWER (Y, N or A: yes, no, abstain) on proposal ID; the last vote counts."""
    args = {"from": sender, "proposalId": str(proposal_id), "answer": answer}
    send_and_wait(rpc_url, "cmt_vote", args, timeout)


def _detail(kind: str, detail: dict[str, Any]) -> str:
    if kind == "transfer_fund":
        reason = f" ({detail['reason']})" if detail.get("reason") else ""
        return f"pay {format_cmt(detail['amount'])} to {detail['to']}{reason}"
    if kind == "change_param":
        at = f" at block {detail['height']}" if detail.get("height") else ""
        return f"{detail['name']} = {detail['value']}{at}"
    if kind == "upgrade":
        return f"{detail['name']}: version {detail['version']} at block {detail['height']}"
    if kind == "text":
        return str(detail.get("title", ""))
    return json.dumps(detail)


@gov_group.command("list")
@rpc_option
@height_option
@json_option
def list_command(rpc_url: str, height: int | None, as_json: bool) -> None:
    """List every proposal with its status and votes (voting power, CMT)."""
    answer = query(rpc_url, "cmt_queryProposals", height=height, as_json=as_json)
    if answer is None:
        return
    proposals = answer["data"]
    if not proposals:
        click.echo(f"no proposals at block {answer['height']}")
        return
    table = Table(title=f"Proposals at block {answer['height']}")
    for column, justify in (
        ("id", "right"),
        ("type", "left"),
        ("detail", "left"),
        ("proposer", "left"),
        ("status", "left"),
        ("yes", "right"),
        ("no", "right"),
        ("abstain", "right"),
        ("voting blocks", "right"),
    ):
        table.add_column(column, justify=justify, no_wrap=column in ("proposer", "status"))
    for item in proposals:
        votes = item["votes"]
        table.add_row(
            str(item["id"]),
            item["type"],
            _detail(item["type"], item["detail"]),
            item["proposer"],
            item["result"],
            table_cmt(votes["yes"]),
            table_cmt(votes["no"]),
            table_cmt(votes["abstain"]),
            f"{item['block_height']}-{item['expire_block_height']}",
        )
    print_table(table)


@gov_group.command("params")
@rpc_option
@height_option
@json_option
def params_command(rpc_url: str, height: int | None, as_json: bool) -> None:
    """Show the chain parameters in force (docs/staking.md explains each)."""
    answer = query(rpc_url, "cmt_queryParams", height=height, as_json=as_json)
    if answer is None:
        return
    table = Table(title=f"Parameters at block {answer['height']}")
    table.add_column("name")
    table.add_column("value", justify="right", no_wrap=True)
    for name, value in sorted(answer["data"].items()):
        shown = f"{value} ({format_cmt(value)})" if name in AMOUNT_PARAMS else str(value)
        table.add_row(name, shown)
    print_table(table)
