"""What the `cmt stake` and `cmt gov` commands share: a small synchronous JSON-RPC client
(stdlib ``urllib.request``), the ``--rpc`` / ``--from`` options, CMT amounts, and sending a
``cmt_*`` transaction then waiting for its receipt.

Errors become ``click.ClickException``s with a clear message (exit status 1): the node is not
reachable, the node answered a JSON-RPC error (a refused call shows the module's revert reason),
or the transaction was mined but failed.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from cybermiles.chain.params import CMT

DEFAULT_RPC = "http://127.0.0.1:8545"
RECEIPT_POLL = 0.1

F = TypeVar("F", bound=Callable[..., Any])


class RpcError(click.ClickException):
    """The node answered a JSON-RPC error."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        self.method = method
        self.code = error.get("code")
        self.error_message = str(error.get("message", ""))
        self.data = error.get("data")
        super().__init__(f"{method} failed: {self.error_message} (JSON-RPC error {self.code})")


class RpcClient:
    """JSON-RPC 2.0 over HTTP POST, one request at a time."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout
        self._id = 0

    def call(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        ).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:  # a JSON-RPC server may still answer JSON
            raw = exc.read()
            if not raw.lstrip().startswith(b"{"):
                raise click.ClickException(
                    f"the node at {self.url} answered HTTP {exc.code} {exc.reason}"
                ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise click.ClickException(
                f"cannot reach a node at {self.url} ({reason}); is it running? "
                "Start one with `cmt devnet`, or pass --rpc URL."
            ) from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise click.ClickException(
                f"the node at {self.url} did not answer JSON-RPC: {raw[:200]!r}"
            ) from None
        if not isinstance(answer, dict):
            raise click.ClickException(f"unexpected answer from {self.url}: {answer!r}")
        if "error" in answer:
            raise RpcError(method, answer["error"])
        return answer.get("result")

    def wait_receipt(self, tx_hash: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.call("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                return dict(receipt)
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"transaction {tx_hash} was sent but not mined within {timeout:g}s; "
                    "check it later with eth_getTransactionReceipt"
                )
            time.sleep(RECEIPT_POLL)


# --- options ----------------------------------------------------------------------------------


def rpc_option(command: F) -> F:
    return click.option(
        "--rpc",
        "rpc_url",
        default=DEFAULT_RPC,
        show_default=True,
        envvar="CMT_RPC",
        help="JSON-RPC URL of the node (env CMT_RPC).",
    )(command)


def tx_options(command: F) -> F:
    """``--from`` (required) and ``--timeout`` for commands that send a transaction."""
    command = click.option(
        "--timeout",
        type=click.FloatRange(min=0),
        default=60.0,
        show_default=True,
        help="Seconds to wait for the transaction to be mined.",
    )(command)
    command = click.option(
        "--from",
        "sender",
        required=True,
        envvar="CMT_FROM",
        callback=_check_address,
        help="Account that signs and pays, one the node holds the key for (a dev account of "
        "`cmt devnet`, or one unlocked with `cmt node --unlock`). Env CMT_FROM.",
    )(command)
    return rpc_option(command)


def json_option(command: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the node's JSON answer instead of a table."
    )(command)


def height_option(command: F) -> F:
    return click.option(
        "--height",
        type=click.IntRange(min=0),
        default=None,
        help="Read the state after this block (default: the latest).",
    )(command)


def _check_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return value
    return address_arg(value, param.name or "address")


def address_arg(value: str, what: str) -> str:
    text = value.strip()
    if len(text) != 42 or text[:2] not in ("0x", "0X"):
        raise click.BadParameter(f"{value!r} is not a 0x-prefixed 20-byte address", param_hint=what)
    try:
        bytes.fromhex(text[2:])
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a hex address", param_hint=what) from None
    return text


def address_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    return None if value is None else address_arg(value, param.name or "address")


# --- amounts ----------------------------------------------------------------------------------


def parse_cmt(value: str) -> int:
    """``"1000"`` / ``"0.5"`` CMT, or ``"123wei"``, as wei."""
    text = value.strip().lower().replace("_", "").replace(",", "")
    try:
        if text.endswith("wei"):
            wei = int(text[:-3].strip(), 10)
        else:
            text = text.removesuffix("cmt").strip()
            amount = Decimal(text) * CMT
            if amount != amount.to_integral_value():
                raise click.BadParameter(f"{value!r} has more than 18 decimals")
            wei = int(amount)
    except (InvalidOperation, ValueError):
        raise click.BadParameter(
            f"{value!r} is not an amount (CMT like 1000 or 0.5, or wei like 1500wei)"
        ) from None
    if wei < 0:
        raise click.BadParameter(f"{value!r} is negative")
    return wei


def cmt_amount(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """click callback: a CMT amount option or argument, as wei."""
    return None if value is None else parse_cmt(value)


def format_cmt(wei: int | str, *, unit: bool = True, places: int = 18) -> str:
    """Wei as CMT: ``1,000.5 CMT``; at most ``places`` decimals (cut, not rounded; a non-zero
    amount cut to nothing shows as ``<0.0001``)."""
    value = int(wei)
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), CMT)
    digits = str(frac).rjust(18, "0")[:places].rstrip("0")
    if not whole and not digits and frac:
        text = f"{sign}<0.{'0' * (places - 1)}1"
    else:
        text = f"{sign}{whole:,}" + (f".{digits}" if digits else "")
    return f"{text} CMT" if unit else text


def table_cmt(wei: int | str) -> str:
    """An amount in a table cell: CMT with at most 4 decimals (``--json`` has the exact wei)."""
    return format_cmt(wei, unit=False, places=4)


def print_table(table: Table) -> None:
    """Print ``table`` on stdout at its natural width, even where the terminal (or a pipe's
    default of 80 columns) is narrower: a squeezed table of addresses is unreadable."""
    console = Console(highlight=False)
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if needed > console.width:
        console = Console(highlight=False, width=needed)
    console.print(table)


def format_rate(rate: str) -> str:
    """A comp rate fraction ``"0.2"`` as ``20%``."""
    try:
        percent = Decimal(rate) * 100
    except InvalidOperation:
        return rate
    return f"{percent.normalize():f}%"


# --- transactions -----------------------------------------------------------------------------


def query(
    rpc_url: str, method: str, *params: Any, height: int | None, as_json: bool
) -> dict[str, Any] | None:
    """Call a ``cmt_query*`` method (at ``height``, default latest); with ``as_json`` print the
    answer and return None, else return ``{"height", "data"}`` for a table."""
    height_params = [] if height is None else [hex(height)]
    answer = RpcClient(rpc_url).call(method, *params, *height_params)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return None
    return answer


def send_and_wait(
    rpc_url: str, method: str, args: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Send ``method(args)``, print the hash, wait for the receipt, print the outcome.

    A failed transaction aborts the command (exit status 1); the receipt is returned otherwise.
    """
    client = RpcClient(rpc_url)
    tx_hash = client.call(method, args)
    click.echo(f"transaction {tx_hash} sent; waiting for it to be mined...")
    receipt = client.wait_receipt(tx_hash, timeout)
    block = int(receipt["blockNumber"], 16)
    gas = int(receipt["gasUsed"], 16)
    if int(receipt["status"], 16) != 1:
        raise click.ClickException(
            f"transaction {tx_hash} failed in block {block} (status 0, gas used {gas:,})"
        )
    click.echo(f"success: mined in block {block}, gas used {gas:,}")
    return receipt
