"""`cmt stake` and `cmt gov` against a real `cmt devnet` process (one per test module/worker).

The commands run in-process through click's CliRunner and talk JSON-RPC to the devnet. Each
test uses its own dev accounts, so the tests may run in any order.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "node"))
from node_harness import Processes, Rpc, free_port

from cybermiles.cli.devnet import dev_keys
from cybermiles.cli.main import cli
from cybermiles.crypto.address import to_checksum

ACCOUNTS = [to_checksum(address) for address, _ in dev_keys(8)]
OPERATOR = ACCOUNTS[0]  # operates the devnet's validator
NOBODY = "0x" + "5a" * 20

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `cmt devnet` on a free port; its RPC URL."""
    processes = Processes(tmp_path_factory.mktemp("devnet"))
    try:
        port = free_port()
        proc = processes.spawn("devnet", "--port", str(port), "--accounts", "8", name="devnet")
        url = f"http://127.0.0.1:{port}"
        proc.wait_rpc(url + "/", timeout=90).close()
        yield url
    finally:
        processes.cleanup()


def cmt(devnet: str, *args: str, ok: bool = True) -> Result:
    """`cmt ARGS --rpc DEVNET` (``--rpc`` goes right after the subcommand path)."""
    result = CliRunner(env={"COLUMNS": "250"}).invoke(
        cli, [*args, "--rpc", devnet], catch_exceptions=False
    )
    if ok:
        assert result.exit_code == 0, result.output
    return result


def json_of(result: Result) -> dict:
    return json.loads(result.output)


def test_validators_lists_the_devnet_validator(devnet: str) -> None:
    out = cmt(devnet, "stake", "validators").output
    assert "Candidates at block" in out
    assert OPERATOR in out
    assert "devnet" in out and "Validator" in out
    assert "1,000,000" in out  # the genesis self-stake, in CMT
    assert "20%" in out  # comp rate 0.2

    doc = json_of(cmt(devnet, "stake", "validators", "--json"))
    assert doc["height"] >= 0
    (validator,) = doc["data"]
    assert validator["owner_address"] == OPERATOR
    assert validator["state"] == "Validator"

    genesis = json_of(cmt(devnet, "stake", "validators", "--json", "--height", "0"))
    assert genesis["height"] == 0


def test_delegate_withdraw_and_delegator(devnet: str) -> None:
    me = ACCOUNTS[1]
    out = cmt(devnet, "stake", "delegator", me).output
    assert "has no delegations" in out

    out = cmt(devnet, "stake", "delegate", "--from", me, OPERATOR, "1500.5").output
    assert "delegating 1,500.5 CMT to" in out
    assert "success: mined in block" in out

    out = cmt(devnet, "stake", "delegator", me).output
    assert OPERATOR in out
    assert "1,500.5" in out

    out = cmt(devnet, "stake", "withdraw", "--from", me, OPERATOR, "500").output
    assert "success" in out
    doc = json_of(cmt(devnet, "stake", "delegator", me, "--json"))
    (entry,) = doc["data"]
    assert entry["delegate_amount"] == str(1_500_500 * 10**15)
    assert entry["withdraw_amount"] == str(500 * 10**18)
    assert entry["pending_withdraw_amount"] == str(500 * 10**18)
    assert int(entry["award_amount"]) > 0  # a block has passed since the delegation


def test_declare_and_update_a_candidacy(devnet: str) -> None:
    me = ACCOUNTS[2]
    out = cmt(
        devnet,
        "stake",
        "declare",
        "--from",
        me,
        "--pub-key",
        "0x" + "d2" * 32,
        "--max-amount",
        "20000",
        "--comp-rate",
        "0.15",
        "--name",
        "bob",
    ).output
    assert "self-stake: 2,000 CMT" in out
    assert "success" in out
    out = cmt(devnet, "stake", "validators").output
    assert me in out and "bob" in out and "15%" in out

    out = cmt(
        devnet, "stake", "update", "--from", me, "--max-amount", "30000", "--website", "b.example"
    ).output
    assert "success" in out
    doc = json_of(cmt(devnet, "stake", "validators", "--json"))
    mine = next(v for v in doc["data"] if v["owner_address"] == me)
    assert mine["max_shares"] == str(30_000 * 10**18)
    assert mine["self_stake"] == str(3_000 * 10**18)
    assert mine["description"]["name"] == "bob"
    assert mine["description"]["website"] == "b.example"


def test_param_change_proposal_passes(devnet: str) -> None:
    before = json_of(cmt(devnet, "gov", "params", "--json"))["data"]["max_vals"]
    wanted = before + 3
    out = cmt(devnet, "gov", "propose", "param", "--from", OPERATOR, "max_vals", str(wanted)).output
    assert "success" in out
    pid = int(out.split("proposal #")[1].split()[0])

    out = cmt(devnet, "gov", "list").output
    assert f"max_vals = {wanted}" in out
    out = cmt(devnet, "gov", "vote", "--from", OPERATOR, str(pid), "Y").output
    assert "success" in out

    proposals = json_of(cmt(devnet, "gov", "list", "--json"))["data"]
    mine = next(p for p in proposals if p["id"] == pid)
    assert mine["result"] == "Approved"
    assert mine["detail"]["value"] == wanted
    assert json_of(cmt(devnet, "gov", "params", "--json"))["data"]["max_vals"] == wanted
    out = cmt(devnet, "gov", "params").output
    assert "max_vals" in out and str(wanted) in out
    assert "proposal_deposit" in out and "(1 CMT)" in out


def test_other_proposals(devnet: str) -> None:
    me = ACCOUNTS[3]
    cmt(devnet, "stake", "delegate", "--from", me, OPERATOR, "10")  # proposing needs stake
    out = cmt(
        devnet,
        "gov",
        "propose",
        "transfer",
        "--from",
        me,
        NOBODY,
        "0.25",
        "--reason",
        "cli test",
        "--deposit",
        "2",
    ).output
    assert "proposal #" in out
    height = Rpc(devnet + "/").block_number() + 1000
    out = cmt(
        devnet, "gov", "propose", "upgrade", "--from", me, "next", "9.9.9", str(height)
    ).output
    assert "proposal #" in out
    out = cmt(devnet, "gov", "propose", "text", "--from", me, "hello", "world").output
    assert "proposal #" in out
    out = cmt(devnet, "gov", "list").output
    assert "pay 0.25 CMT to" in out and "cli test" in out
    assert "version 9.9.9" in out
    assert "hello" in out
    proposals = json_of(cmt(devnet, "gov", "list", "--json"))["data"]
    transfer = next(p for p in proposals if p["type"] == "transfer_fund")
    assert transfer["deposit"] == str(2 * 10**18)
    pid = transfer["id"]
    assert "success" in cmt(devnet, "gov", "vote", "--from", me, str(pid), "no").output


def test_errors_are_clear(devnet: str) -> None:
    me = ACCOUNTS[4]
    # a call the module refuses: the revert reason, exit status 1
    result = cmt(devnet, "stake", "delegate", "--from", me, NOBODY, "10", ok=False)
    assert result.exit_code == 1
    assert "execution reverted: staking:" in result.output
    assert "is not a candidate" in result.output
    # an account the node has no key for
    result = cmt(devnet, "stake", "delegate", "--from", NOBODY, OPERATOR, "1", ok=False)
    assert result.exit_code == 1 and "unknown account" in result.output
    # bad input is a usage error (exit status 2) before anything is sent
    result = cmt(devnet, "stake", "delegate", "--from", me, OPERATOR, "lots", ok=False)
    assert result.exit_code == 2 and "is not an amount" in result.output
    result = cmt(devnet, "gov", "vote", "--from", me, "1", "perhaps", ok=False)
    assert result.exit_code == 2
    # the node is not there
    result = CliRunner().invoke(
        cli, ["stake", "validators", "--rpc", "http://127.0.0.1:1"], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "cannot reach a node at http://127.0.0.1:1" in result.output
    assert "Traceback" not in result.output


def test_help_texts() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["--help"]).output
    assert "stake" in out and "gov" in out
    out = runner.invoke(cli, ["stake", "--help"]).output
    for command in ("declare", "update", "delegate", "withdraw", "validators", "delegator"):
        assert command in out
    out = runner.invoke(cli, ["gov", "propose", "--help"]).output
    for command in ("param", "transfer", "upgrade", "text"):
        assert command in out
    out = runner.invoke(cli, ["stake", "delegate", "--help"]).output
    assert "--from" in out and "--rpc" in out and "CMT" in out
