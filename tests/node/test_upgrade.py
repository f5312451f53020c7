"""A passed upgrade proposal stops a real `cmt node` before the upgrade height, with a message
naming the version to install, and the old version refuses to start again."""

from __future__ import annotations

from pathlib import Path

import pytest
from node_harness import (
    GWEI,
    Processes,
    free_port,
    genesis_doc,
    hexint,
    init_home,
    make_accounts,
    sign_transfer,
)

from cybermiles.chain.genesis import load_genesis
from cybermiles.cli.run import UPGRADE_EXIT_CODE
from cybermiles.modules.addresses import GOVERNANCE
from cybermiles.modules.governance.module import GovernanceModule
from cybermiles.node.blockchain import Blockchain, UpgradeRequired
from cybermiles.node.config import DATA_DIR, GENESIS_FILE

CMT = 10**18
NEW_VERSION = "99.0.0"


@pytest.mark.timeout(180)
def test_node_halts_at_upgrade_height_and_old_version_refuses_to_start(
    tmp_path: Path, processes: Processes
) -> None:
    accounts = make_accounts(2, seed=11)
    operator = accounts[0]
    genesis = genesis_doc(accounts)
    genesis["validators"] = [
        {"address": operator.address, "pub_key": "0x" + "5a" * 32, "max_amount": str(10**6 * CMT)}
    ]
    genesis["params"] = {"proposal_deposit": str(CMT), "proposal_expire_period": 50}
    home = tmp_path / "home"
    init_home(home, genesis)

    port = free_port()
    node = processes.node(home, port)
    rpc = node.wait_rpc(f"http://127.0.0.1:{port}")
    upgrade_height = 6  # blocks 1 and 2 propose and vote; 3..5 are ordinary transfers
    propose = GovernanceModule.calldata("proposeUpgrade", "v2", NEW_VERSION, upgrade_height)
    vote = GovernanceModule.calldata("vote", 1, 0)
    for nonce, (data, value) in enumerate([(propose, CMT), (vote, 0)]):
        raw, tx_hash = sign_transfer(
            operator, nonce, to=GOVERNANCE.hex(), value=value, gas=3_000_000, data=data
        )
        rpc.send_raw(raw)
        assert rpc.wait_receipt(tx_hash)["status"] == "0x1"
    for nonce in range(3):
        raw, tx_hash = sign_transfer(accounts[1], nonce, gas_price=GWEI)
        rpc.send_raw(raw)
        assert rpc.wait_receipt(tx_hash)["status"] == "0x1"
    assert hexint(rpc.call("eth_blockNumber")) == upgrade_height - 1
    # The next transaction would make block 6: the node stops instead of building it.
    raw, _ = sign_transfer(accounts[1], 3)
    rpc.send_raw(raw)
    assert node.wait(60) == UPGRADE_EXIT_CODE, node.tail()
    out = node.output()
    assert NEW_VERSION in out and "Install cybermiles 99.0.0" in out, out[-2000:]
    assert "Traceback" not in out

    again = processes.node(home, free_port(), name="again")
    assert again.wait(60) == UPGRADE_EXIT_CODE, again.tail()
    assert NEW_VERSION in again.output()

    chain = Blockchain(home / DATA_DIR, load_genesis(home / GENESIS_FILE))
    try:
        assert chain.head.block_number == upgrade_height - 1  # block 6 was never built
        with pytest.raises(UpgradeRequired, match=NEW_VERSION):
            chain.check_upgrade(upgrade_height)
    finally:
        chain.close()
