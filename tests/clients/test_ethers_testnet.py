"""ethers v6, unchanged, against any node of a 4-validator BFT testnet.

`cmt testnet init --validators 4` (``init_testnet`` through ``network_harness.Testnet``, on free
loopback ports) and four `cmt node` processes; then the same ``ethers_flow.mjs`` as the devnet
test, pointed at node 2 (not node 0) and told the testnet's chain id, that blocks come on their
own (~1 s apart) and which validator owner to delegate to. Every devnet check must pass; then
node 0 must agree on the deployed token's creation receipt, the delegation, and every block.

Every process is killed at teardown; every wait is bounded.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clients_harness import ADDRESS1
from network_harness import Testnet, wait_until
from node_harness import Processes, hexint
from test_ethers import run_ethers_flow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RPC_NODE = 2  # the node ethers talks to
OTHER_NODE = 0  # the node that must agree with it
DELEGATE_TO = 1  # the validator (owner) the staking section delegates to
FLOW_TIMEOUT_MS = 90_000  # ~10 transactions at ~1 s blocks, with room for a loaded machine


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    processes = Processes(tmp_path_factory.mktemp("ethers-testnet-logs"))
    try:
        testnet = Testnet.create(tmp_path_factory.mktemp("ethers-testnet") / "testnet", processes)
        for node in testnet.nodes:  # all four import at once
            testnet.start(node.index, wait=False)
        testnet.wait_heights(testnet.nodes, 2, timeout=120)
        yield testnet
    finally:
        processes.cleanup()


def test_ethers_v6_flow_on_a_bft_testnet_node(net: Testnet) -> None:
    node, other = net.nodes[RPC_NODE], net.nodes[OTHER_NODE]
    validator = net.nodes[DELEGATE_TO].owner
    assert node.rpc is not None and other.rpc is not None
    assert len(net.validators(node)) == 4 and validator in net.validators(node)
    assert hexint(node.rpc.call("eth_chainId")) == net.manifest["chain_id"]

    result = run_ethers_flow(
        node.rpc_url + "/",
        env={
            "CMT_CHAIN_ID": str(net.manifest["chain_id"]),
            "CMT_STAKING_VALIDATOR": validator,
            "CMT_AUTOMINE": "0",
            "ETHERS_FLOW_TIMEOUT_MS": str(FLOW_TIMEOUT_MS),
            "ETHERS_FLOW_WAIT_MS": "30000",
        },
        timeout=FLOW_TIMEOUT_MS / 1000 + 30,
        node_log=lambda: net.describe([node, other]),
    )
    net.check_alive(net.nodes)

    # Another node has the token's creation in the same block.
    receipt = wait_until(
        lambda: other.rpc.receipt(result["deployTx"]), 30, f"the deploy receipt on {other.name}"
    )
    assert receipt["blockHash"] == result["deployBlockHash"], (receipt, result)
    assert hexint(receipt["blockNumber"]) == result["deployBlockNumber"]
    assert receipt["contractAddress"].lower() == result["token"].lower()
    assert hexint(receipt["status"]) == 1
    assert len(other.rpc.call("eth_getCode", result["token"], "latest")) > 2

    # ... and the delegation made through node 2, and every block up to the lowest head.
    def delegated() -> dict[str, str] | None:
        answer = other.rpc.call("cmt_queryDelegator", ADDRESS1)
        return next((d for d in answer["data"] if d["validator_address"] == validator), None)

    delegation = wait_until(delegated, 30, f"the delegation on {other.name}")
    assert int(delegation["delegate_amount"]) == 5000 * 10**18, delegation
    assert net.assert_same_chain(net.nodes) >= result["deployBlockNumber"]
