"""Transaction gossip: batching, de-duplication per peer, bounded seen-sets, bad batches."""

from __future__ import annotations

import asyncio

import rlp
from p2p_helpers import RawPeer, connected, eventually, make_switch, run

from cybermiles.crypto.keccak import keccak256
from cybermiles.p2p import TX_CHANNEL, Peer, SeenSet, TxGossip


def test_seen_set_is_bounded_and_remembers_recent_items() -> None:
    seen = SeenSet(100)
    for i in range(1000):
        seen.add(i.to_bytes(4, "big"))
    assert len(seen) <= 100
    assert all(i.to_bytes(4, "big") in seen for i in range(950, 1000))
    assert (0).to_bytes(4, "big") not in seen


class Mempool:
    """Accepts every tx once and re-gossips it, as the mempool reactor will."""

    def __init__(self) -> None:
        self.txs: list[bytes] = []
        self.senders: list[str] = []
        self.gossip: TxGossip | None = None

    async def on_txs(self, peer: Peer, txs: list[bytes]) -> None:
        for tx in txs:
            if tx not in self.txs:
                self.txs.append(tx)
                self.senders.append(peer.node_id)
                assert self.gossip is not None
                self.gossip.broadcast_tx(tx)


def test_txs_flow_along_a_line_once_per_link() -> None:
    async def main() -> None:
        nodes = []
        for _ in range(3):
            switch, _ = make_switch(channels=())
            pool = Mempool()
            pool.gossip = TxGossip(switch, pool.on_txs, batch_interval=0.02)
            nodes.append((switch, pool))
        (a, pa), (b, pb), (c, pc) = nodes
        for switch, pool in nodes:
            await switch.start()
            assert pool.gossip is not None
            pool.gossip.start()
        try:
            await a.dial(b.listen_address)
            await b.dial(c.listen_address)
            await connected(a, b)
            await connected(b, c)
            txs = [bytes([2]) + i.to_bytes(3, "big") * 30 for i in range(500)]
            assert pa.gossip is not None
            for tx in txs:
                pa.gossip.broadcast_tx(tx)
                pa.gossip.broadcast_tx(tx)  # de-duplicated
            await eventually(lambda: len(pc.txs) == len(txs))
            assert pb.txs == txs and pc.txs == txs
            assert set(pc.senders) == {b.node_id}
            await asyncio.sleep(0.1)
            assert pa.txs == []  # nothing came back to the origin
            assert pb.gossip is not None and pb.gossip.flush() == 0
        finally:
            for switch, pool in nodes:
                assert pool.gossip is not None
                await pool.gossip.stop()
                await switch.stop()

    run(main())


def test_malformed_batches_ban_the_sender() -> None:
    async def main() -> None:
        switch, _ = make_switch(channels=())
        pool = Mempool()
        pool.gossip = TxGossip(switch, pool.on_txs)
        await switch.start()
        try:
            for i, payload in enumerate(
                [b"\xff\x00garbage", rlp.encode([[b"nested"]]), rlp.encode([b""])]
            ):
                raw = RawPeer()
                await raw.connect(switch, f"127.0.1.{i + 1}", channels=(TX_CHANNEL,))
                await raw.send(TX_CHANNEL, payload)
                assert await raw.closed_by_remote()
                await eventually(lambda r=raw: switch.bans.id_ban_remaining(r.node_id) > 0)
            good = RawPeer()
            await good.connect(switch, "127.0.1.9", channels=(TX_CHANNEL,))
            tx = b"\x02tx"
            await good.send(TX_CHANNEL, rlp.encode([tx, tx]))
            await eventually(lambda: pool.txs == [tx])
            assert keccak256(tx) in pool.gossip._seen[good.node_id]
        finally:
            await switch.stop()

    run(main())
