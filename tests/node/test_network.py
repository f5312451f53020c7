"""A 4-validator BFT network of real `cmt node` processes on loopback.

One testnet (written by ``init_testnet``, what `cmt testnet init` runs) is shared by the whole
module; the tests run in file order and each leaves all four validators running (the last one,
double signing, ends with one of them jailed). Genesis sets ``max_slash_blocks`` high so that
the validators these tests stop on purpose are not deactivated for downtime while they are
down (the testnet default, 12 blocks, is about 12 s here), which would change the validator set
under the later tests. Consensus runs with the testnet timeouts (``TESTNET_TIMEOUTS``).

Every process is killed at teardown (``module_processes``); every wait is bounded.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from network_harness import (
    Load,
    NetNode,
    Testnet,
    chain_db,
    make_twin,
    wait_until,
)
from node_harness import Processes, hexint, startup_head

from cybermiles.node.consensus_app import decode_evidence

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SLASH_RATIO = 10  # basis points: the testnet genesis (chain.params default)
JAIL_PERIOD = 30  # blocks: TESTNET_PARAMS
# Lines that must never appear in a node's log: a crash, a stopped reactor, a refused
# (double) signature, a validator seeing its own key sign elsewhere, an evidence problem.
FORBIDDEN = (
    "Traceback",
    "consensus stopped",
    "not sending vote",
    "not sending proposal",
    "conflicting votes of our own validator",
    "evidence against our own validator",
    "dropping invalid evidence",
    "the block producer failed",
)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory, module_processes: Processes) -> Iterator[Testnet]:
    home = tmp_path_factory.mktemp("bft") / "testnet"
    testnet = Testnet.create(home, module_processes, params={"max_slash_blocks": 100_000})
    yield testnet
    # module_processes kills every process at teardown.


def ensure_running(net: Testnet, indexes: list[int] | None = None) -> list[NetNode]:
    """Start whichever of the validators ``indexes`` (default: all four) is not running."""
    chosen = [net.nodes[i] for i in (indexes if indexes is not None else range(4))]
    for node in chosen:
        if not node.running:
            net.start(node.index)
    return chosen


def assert_clean_logs(nodes: list[NetNode]) -> None:
    for node in nodes:
        out = node.output()
        for line in FORBIDDEN:
            assert line not in out, f"{node.name} logged {line!r}:\n{node.tail(80)}"


def validator_view(net: Testnet, node: NetNode) -> dict[str, dict[str, object]]:
    return net.validators(node)


# --------------------------------------------------------------------------- tests


def test_late_node_block_syncs_to_the_head_then_signs(net: Testnet) -> None:
    """Start 3 of 4 validators (75 % of the power: they commit without the 4th), then the 4th:
    it block-syncs to the head, then its precommits appear in later blocks' commits."""
    net.warm(1)  # the late node's process, imported while the others run
    first_three = ensure_running(net, [0, 1, 2])
    late = net.nodes[3]
    assert not late.running
    net.wait_heights(first_three, 6, timeout=60)
    net.assert_same_chain(first_three)

    joined_at = max(net.heights(first_three).values())
    net.start(3)
    all_four = [*first_three, late]
    # Block sync: the late node reaches where the others were, then keeps up with them.
    net.wait_heights([late], joined_at, timeout=60)
    net.wait_progress(all_four, 3, timeout=60)
    state = wait_until(
        lambda: (st := net.consensus_state(late))["peers"] == 3 and st, 30, "3 peers of node3"
    )
    assert state["node_id"] == late.node_id

    # Participation: a later block carries a commit holding the late validator's signature.
    owner = bytes.fromhex(late.owner[2:])

    def signed_by_late() -> int | None:
        net.check_alive(all_four)
        top = net.height(net.nodes[0])
        with chain_db(net.nodes[0].home) as db:
            for height in range(joined_at + 2, top + 1):
                commit = db.last_commit(height)
                if commit is not None and owner in commit.signers():
                    return height
        return None

    try:
        found = wait_until(signed_by_late, 60, "a commit signed by the late validator", 0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{net.describe(all_four)}") from None
    assert found > joined_at
    net.wait_progress(all_four, 2, timeout=60)  # and it keeps up
    net.assert_same_chain(all_four)
    assert_clean_logs(all_four)


def test_four_validators_commit_the_same_blocks_with_transactions(net: Testnet) -> None:
    nodes = ensure_running(net)
    with Load(net, tps=6) as load:
        net.wait_progress(nodes, 5, timeout=60)
        wait_until(lambda: len(load.stats.sent) >= 10, 30, "10 transactions admitted")
    sent = list(load.stats.sent)
    assert sent, f"no transaction admitted (last error: {load.stats.last_error})"

    # Every admitted transaction lands in a block, the same one on every node.
    def receipts() -> dict[str, str] | None:
        found = {}
        for tx_hash in sent:
            receipt = nodes[0].rpc.receipt(tx_hash) if nodes[0].rpc else None
            if receipt is None:
                return None
            assert receipt["status"] == "0x1", receipt
            found[tx_hash] = receipt["blockHash"]
        return found

    included = wait_until(receipts, 60, f"receipts of the {len(sent)} transactions")
    for node in nodes[1:]:
        assert node.rpc is not None
        for tx_hash, block_hash in included.items():
            receipt = wait_until(lambda n=node, h=tx_hash: n.rpc.receipt(h), 30, "receipt")
            assert receipt["blockHash"] == block_hash, (node.name, tx_hash)

    top = net.assert_same_chain(nodes)
    assert top >= 5
    for node in nodes:
        assert node.rpc is not None
        wait_until(
            lambda n=node: hexint(n.rpc.call("net_peerCount")) == 3, 30, f"{node.name}: 3 peers"
        )
        assert net.consensus_state(node)["peers"] == 3
    assert_clean_logs(nodes)


def test_one_down_keeps_committing_two_down_halts_then_both_recover(net: Testnet) -> None:
    nodes = ensure_running(net)
    net.warm(2)
    a, b = net.nodes[1], net.nodes[2]
    survivors = [net.nodes[0], net.nodes[3]]

    assert net.stop(a.index) == 0, a.tail()
    assert "stopped cleanly" in a.output()
    three = [n for n in nodes if n is not a]
    net.wait_progress(three, 3, timeout=60)  # 3/4 of the power: still live
    net.assert_same_chain(three)

    assert net.stop(b.index) == 0, b.tail()
    time.sleep(2)  # let a block that was already decided land
    halted = net.heights(survivors)
    time.sleep(6)
    net.check_alive(survivors)
    assert net.heights(survivors) == halted, "the chain advanced with half the power down"
    for node in survivors:
        assert net.consensus_state(node)["committed"] == halted[node.name]
    halted_at = max(halted.values())

    net.start(a.index)
    net.start(b.index)
    heights = net.wait_heights(nodes, halted_at + 3, timeout=90)
    assert min(heights.values()) >= halted_at + 3
    net.assert_same_chain(nodes)
    assert_clean_logs(nodes)


def test_sigkill_and_restart_under_load_catches_up_without_double_signing(
    net: Testnet,
) -> None:
    nodes = ensure_running(net)
    before = validator_view(net, nodes[0])
    assert len(before) == 4
    for v in before.values():
        assert v["active"] == "Y" and v["jailed_until"] == 0, v
    victim = net.nodes[3]
    others = [n for n in nodes if n is not victim]
    net.warm(1)
    with Load(net, tps=6) as load:
        net.wait_progress(nodes, 2, timeout=60)
        assert net.stop(victim.index, signal.SIGKILL) == -signal.SIGKILL
        killed_at = max(net.heights(others).values())
        net.wait_progress(others, 3, timeout=60)
        net.start(victim.index)
        top = max(net.heights(others).values())
        net.wait_heights([victim], top, timeout=60)  # block sync + WAL replay
        net.wait_progress(nodes, 3, timeout=60)  # and it keeps up afterwards
    assert load.stats.sent, load.stats.last_error

    # It resumed from its own data (then WAL replay, if its log had records of the height it
    # was in, and block sync), not from genesis.
    resumed_at, _, _ = startup_head(victim.logs[-1].read_text(errors="replace"))
    assert 0 < resumed_at <= killed_at
    top = net.assert_same_chain(nodes)
    for node in nodes:
        with chain_db(node.home) as db:
            assert db.included_evidence() == {}, f"{node.name}: a block included evidence"
            assert all(not db.block_evidence(h) for h in range(1, top + 1))
    after = validator_view(net, nodes[0])
    for owner, v in after.items():
        assert v["active"] == "Y", v
        assert v["jailed_until"] == 0, v
        # Block awards add to the shares; a slash would take 0.1 % away.
        assert int(v["shares"]) >= int(before[owner]["shares"]), (v, before[owner])
        assert nodes[0].rpc is not None
        for delegation in nodes[0].rpc.call("cmt_queryDelegator", owner)["data"]:
            assert delegation["slash_amount"] == "0", delegation
    assert_clean_logs(nodes)


def test_double_signing_is_evidenced_and_slashed(net: Testnet, tmp_path: Path) -> None:
    """A second process signs with node1's consensus key (empty last-sign state). Its propose
    timeout is 1 ms, so at almost every height it prevotes nil while node1 prevotes the
    proposal: conflicting prevotes of one validator, which the others turn into evidence, the
    next proposer includes, and staking slashes and jails."""
    nodes = ensure_running(net)
    target = net.nodes[1]
    honest = [n for n in nodes if n is not target]
    owner = target.owner
    owner_bytes = bytes.fromhex(owner[2:])
    rpc = nodes[0].rpc
    assert rpc is not None
    before = validator_view(net, nodes[0])[owner]
    assert before["active"] == "Y" and before["jailed_until"] == 0, before

    twin = make_twin(net, 1, tmp_path / "twin", timeouts={**_testnet_timeouts(), "propose_ms": 1})
    net.start(twin.index)

    def jailed() -> dict[str, object] | None:
        net.check_alive(nodes)
        view = validator_view(net, nodes[0])[owner]
        return view if view["jailed_until"] != 0 else None

    try:
        wait_until(jailed, 120, f"{target.name}'s validator jailed", 0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{net.describe([*nodes, twin])}") from None

    # The first block with evidence: the evidence names the validator whose key has two
    # signers, and executing that block slashed, deactivated and jailed it.
    with chain_db(nodes[0].home) as db:
        included = db.included_evidence()
        assert included, "jailed without included evidence"
        height = min(included.values())
        evidence = [decode_evidence(raw) for raw in db.block_evidence(height)]
    assert evidence and all(e.validator == owner_bytes for e in evidence), evidence
    assert all(e.height < height for e in evidence)

    def candidate_at(number: int) -> dict[str, object]:
        return {v["owner_address"]: v for v in rpc.call("cmt_queryValidators", number)["data"]}[
            owner
        ]

    def delegation_at(number: int) -> dict[str, str]:
        [found] = [
            d
            for d in rpc.call("cmt_queryDelegator", owner, number)["data"]
            if d["validator_address"] == owner
        ]
        return found

    pre, post = candidate_at(height - 1), candidate_at(height)
    pre_d, post_d = delegation_at(height - 1), delegation_at(height)
    assert pre["active"] == "Y" and pre["jailed_until"] == 0, pre
    assert post["active"] == "N", post
    assert post["jailed_until"] == height + JAIL_PERIOD, post
    # One incident is slashed once (later evidence finds the validator jailed): slash_ratio of
    # the (self-)delegation's shares, however many pieces of evidence the block carries.
    cut = int(pre_d["shares"]) * SLASH_RATIO // 10_000
    assert cut > 0
    assert int(post_d["slash_amount"]) - int(pre_d["slash_amount"]) == cut, (pre_d, post_d)
    assert int(post["shares"]) == int(pre["shares"]) - cut, (pre, post)

    # The three honest validators (3/4 of the old power, all of the new) keep committing; the
    # jailed validator's node still follows; nobody forked; every node has the same evidence.
    net.wait_progress(honest, 3, timeout=60)
    net.assert_same_chain(nodes)
    for node in nodes:
        with chain_db(node.home) as db:
            assert set(db.included_evidence()) >= set(included), node.name
    assert_clean_logs(honest)
    now = validator_view(net, nodes[0])[owner]
    assert now["active"] == "N" and now["jailed_until"] >= height + JAIL_PERIOD, now


def _testnet_timeouts() -> dict[str, int]:
    from cybermiles.cli.testnet import TESTNET_TIMEOUTS

    return dict(TESTNET_TIMEOUTS)


def test_every_equivocation_seen_becomes_pending_evidence(net: Testnet) -> None:
    """After ``test_double_signing_is_evidenced_and_slashed``: no honest node threw away
    evidence of the height it was working on."""
    twins = [n for n in net.nodes if n.name.endswith("-twin")]
    if not twins:
        pytest.skip("needs test_double_signing_is_evidenced_and_slashed to run first")
    honest = [net.nodes[i] for i in (0, 2, 3)]
    dropped = [
        f"{node.name}: {line.strip()}"
        for node in honest
        for line in node.output().splitlines()
        if "ignoring evidence" in line and "evidence of height" in line
    ]
    assert not dropped, "\n".join(dropped[:20])
