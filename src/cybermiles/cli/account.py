"""`cmt account new|list|import`: encrypted keys in ``<home>/keystore`` (keystore v3, scrypt)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from eth_account import Account

from cybermiles.cli.common import fail, home_option
from cybermiles.node.config import KEYSTORE_DIR

password_file_option = click.option(
    "--password",
    "password_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Read the password from this file (first line) instead of prompting.",
)


def read_password(password_file: Path | None, *, confirm: bool) -> str:
    if password_file is not None:
        lines = password_file.read_text().splitlines()
        return lines[0] if lines else ""
    return click.prompt("Password", hide_input=True, confirmation_prompt=confirm)


def keystore_files(home: Path) -> list[Path]:
    directory = home / KEYSTORE_DIR
    return sorted(p for p in directory.glob("UTC--*") if p.is_file()) if directory.exists() else []


def save_key(home: Path, private_key: bytes, password: str) -> str:
    """Encrypt ``private_key`` into a new keystore file; return the checksum address."""
    acct = Account.from_key(private_key)
    existing = {json.loads(p.read_text()).get("address", "").lower() for p in keystore_files(home)}
    if acct.address[2:].lower() in existing:
        fail(f"account {acct.address} is already in {home / KEYSTORE_DIR}")
    keystore = Account.encrypt(private_key, password)
    directory = home / KEYSTORE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    path = directory / f"UTC--{stamp}.000000000Z--{acct.address[2:].lower()}"
    path.write_text(json.dumps(keystore))
    path.chmod(0o600)
    return acct.address


@click.group("account")
def account_group() -> None:
    """Manage keystore accounts."""


@account_group.command("new")
@home_option
@password_file_option
def account_new(home: Path, password_file: Path | None) -> None:
    """Create a new account."""
    password = read_password(password_file, confirm=True)
    address = save_key(home, bytes(Account.create().key), password)
    click.echo(f"Address: {address}")


@account_group.command("import")
@home_option
@password_file_option
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="File holding the hex private key (otherwise prompted, hidden).",
)
def account_import(home: Path, password_file: Path | None, key_file: Path | None) -> None:
    """Import a hex private key into the keystore."""
    text = (
        key_file.read_text().strip() if key_file else click.prompt("Private key", hide_input=True)
    )
    text = text.removeprefix("0x").strip()
    try:
        key = bytes.fromhex(text)
        if len(key) != 32:
            raise ValueError
        Account.from_key(key)
    except ValueError:
        fail("the private key must be 32 bytes of hex (64 hex digits)")
    password = read_password(password_file, confirm=True)
    click.echo(f"Address: {save_key(home, key, password)}")


@account_group.command("list")
@home_option
def account_list(home: Path) -> None:
    """List the keystore's accounts."""
    files = keystore_files(home)
    if not files:
        click.echo(f"no accounts in {home / KEYSTORE_DIR}")
        return
    for i, path in enumerate(files):
        address = json.loads(path.read_text()).get("address", "?")
        click.echo(f"Account #{i}: 0x{address}  {path}")
