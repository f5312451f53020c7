"""Switch: peers on loopback, channel routing, limits, bans, reconnects, keepalive.

Misbehaving peers connect from their own loopback address (127.0.0.2, 127.0.0.3, ...) so that
the IP ban they earn does not hit the well-behaved switches on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from p2p_helpers import (
    BLOB,
    CHAT,
    RawPeer,
    connected,
    eventually,
    is_refused,
    make_switch,
    run,
)

from cybermiles.p2p import (
    IncompatiblePeer,
    NetAddress,
    NodeIdMismatch,
    P2PConfig,
    PeerMisbehavior,
    PeerRefused,
    Switch,
)
from cybermiles.p2p.errors import ConnectionClosed, P2PError


async def started(*switches: Switch) -> None:
    for switch in switches:
        await switch.start()


async def stopped(*switches: Switch) -> None:
    await asyncio.gather(*(s.stop() for s in switches))


def test_two_switches_exchange_messages_on_channels() -> None:
    async def main() -> None:
        (a, a_in), (b, b_in) = make_switch(), make_switch()
        added: list[str] = []
        removed: list[str] = []
        a.add_peer_listener(lambda p: added.append(p.node_id), lambda p: removed.append(p.node_id))
        await started(a, b)
        try:
            peer = await a.dial(b.listen_address)
            assert peer.outbound and peer.node_id == b.node_id
            await connected(a, b)
            assert b.peers[a.node_id].info.moniker == "test"
            assert a.send(b.node_id, CHAT, b"hello b")
            assert a.send(peer, BLOB, b"\x00" * 60_000)
            assert b.send(a.node_id, CHAT, b"hello a")
            assert await b_in[CHAT].get() == (a.node_id, b"hello b")
            assert await b_in[BLOB].get() == (a.node_id, b"\x00" * 60_000)
            assert await a_in[CHAT].get() == (b.node_id, b"hello a")
            for i in range(100):  # order is kept per peer and channel
                a.send(b.node_id, CHAT, i.to_bytes(2, "big"))
            for i in range(100):
                assert (await b_in[CHAT].get())[1] == i.to_bytes(2, "big")
            with pytest.raises(ValueError):
                a.send(b.node_id, CHAT, b"x" * (64 * 1024 + 1))
            with pytest.raises(ValueError):
                a.send(b.node_id, 0x55, b"unregistered")
            assert added == [b.node_id]
        finally:
            await stopped(a, b)
        assert removed == [b.node_id]

    run(main())


def test_broadcast_reaches_every_peer_serving_the_channel() -> None:
    async def main() -> None:
        (a, _), (b, b_in), (c, c_in) = make_switch(), make_switch(), make_switch()
        d, _ = make_switch(channels=(BLOB,))  # does not serve CHAT
        await started(a, b, c, d)
        try:
            for other in (b, c, d):
                await a.dial(other.listen_address)
            await b.dial(c.listen_address)
            await eventually(lambda: len(a.peers) == 3 and len(c.peers) == 2)
            assert a.broadcast(CHAT, b"to all") == 2
            assert await b_in[CHAT].get() == (a.node_id, b"to all")
            assert await c_in[CHAT].get() == (a.node_id, b"to all")
            assert not a.send(d.node_id, CHAT, b"d does not serve CHAT")
            assert c.broadcast(CHAT, b"from c") == 2
            assert await b_in[CHAT].get() == (c.node_id, b"from c")
        finally:
            await stopped(a, b, c, d)

    run(main())


def test_other_chain_or_genesis_is_refused_without_a_ban() -> None:
    async def main() -> None:
        a, _ = make_switch()
        other_chain, _ = make_switch(chain_id=19)
        other_genesis, _ = make_switch(genesis=b"\xee" * 32)
        await started(a, other_chain, other_genesis)
        try:
            for other in (other_chain, other_genesis):
                with pytest.raises(IncompatiblePeer):
                    await a.dial(other.listen_address)
                await eventually(lambda o=other: not o._pending_inbound)
                assert not a.peers and not other.peers
                assert not a.is_banned(node_id=other.node_id)
                assert not other.is_banned(ip="127.0.0.1")
        finally:
            await stopped(a, other_chain, other_genesis)

    run(main())


def test_lying_node_id_is_refused_and_banned() -> None:
    async def main() -> None:
        a, _ = make_switch()
        good, _ = make_switch()
        await started(a, good)
        try:
            liar = RawPeer()
            with pytest.raises((P2PError, OSError)):
                await liar.connect(a, "127.0.0.2", node_id="ab" * 20)
                await liar.send(CHAT, b"x")
                assert await liar.closed_by_remote()
                raise ConnectionClosed("refused")
            await eventually(lambda: a.bans.id_ban_remaining(liar.node_id) > 0)
            assert a.bans.ip_ban_remaining("127.0.0.2") > 0
            assert not a.peers
            assert await is_refused("127.0.0.1", a.listen_address.port, "127.0.0.2")
            await good.dial(a.listen_address)  # the listener still accepts good peers
            await connected(a, good)
        finally:
            await stopped(a, good)

    run(main())


def test_dialing_an_address_whose_key_differs_is_refused() -> None:
    async def main() -> None:
        a, _ = make_switch()
        b, _ = make_switch()
        await started(a, b)
        try:
            wrong = NetAddress(b.listen_address.host, b.listen_address.port, "cd" * 20)
            with pytest.raises(NodeIdMismatch):
                await a.dial(wrong)
            assert not a.is_banned(node_id=b.node_id)  # stale address, not an attack
            with pytest.raises(PeerRefused):
                await a.dial(a.listen_address)
            self_by_ip = NetAddress(a.listen_address.host, a.listen_address.port)
            with pytest.raises(IncompatiblePeer):
                await a.dial(self_by_ip)
            assert not a.peers
        finally:
            await stopped(a, b)

    run(main())


def test_garbage_before_handshake_bans_the_ip_and_good_peers_still_connect() -> None:
    async def main() -> None:
        a, a_in = make_switch()
        good, _ = make_switch()
        await started(a, good)
        try:
            raw = RawPeer()
            await raw.open(a, "127.0.0.3")
            await raw.write_raw(os.urandom(200))
            assert await raw.closed_by_remote()
            await eventually(lambda: a.is_banned(ip="127.0.0.3"))
            assert await is_refused("127.0.0.1", a.listen_address.port, "127.0.0.3")
            await good.dial(a.listen_address)
            good.send(a.node_id, CHAT, b"still alive")
            assert await a_in[CHAT].get() == (good.node_id, b"still alive")
        finally:
            await stopped(a, good)

    run(main())


@pytest.mark.parametrize(
    "attack",
    ["garbage", "tampered", "oversize", "unknown_channel", "bad_control", "empty"],
)
def test_misbehavior_after_handshake_disconnects_and_bans(attack: str) -> None:
    async def main() -> None:
        a, a_in = make_switch()
        good, _ = make_switch()
        await started(a, good)
        try:
            raw = RawPeer()
            await raw.connect(a, "127.0.0.4")
            await eventually(lambda: raw.node_id in a.peers)
            await raw.send(CHAT, b"fine")
            assert await a_in[CHAT].get() == (raw.node_id, b"fine")
            conn = raw.conn
            assert conn is not None
            if attack == "garbage":
                await raw.write_raw(os.urandom(20_000))  # > any frame length it may announce
            elif attack == "tampered":
                frame = bytearray(conn._seal_frame(b"\x05\x00\x00\x00\x20abcd"))
                frame[-1] ^= 0x80
                await raw.write_raw(bytes(frame))
            elif attack == "oversize":
                await raw.send(CHAT, b"x" * (64 * 1024 + 1))
            elif attack == "unknown_channel":
                await raw.send(0x77, b"who serves this?")
            elif attack == "bad_control":
                await raw.send(0, b"\x09")
            else:
                await conn.write_message(b"")
            assert await raw.closed_by_remote()
            await eventually(lambda: raw.node_id not in a.peers)
            assert a.is_banned(node_id=raw.node_id)
            assert a.is_banned(ip="127.0.0.4")
            again = RawPeer(raw.key)
            with pytest.raises((P2PError, OSError)):
                await again.connect(a, "127.0.0.5")  # new IP, banned id: refused after auth
                await again.send(CHAT, b"x")
                assert await again.closed_by_remote()
                raise ConnectionClosed("refused")
            assert raw.node_id not in a.peers
            await good.dial(a.listen_address)
            await connected(a, good)
        finally:
            await stopped(a, good)

    run(main())


def test_handler_reported_misbehavior_bans_until_expiry() -> None:
    async def main() -> None:
        a, _ = make_switch(channels=())
        b, _ = make_switch()

        async def judge(peer, payload: bytes) -> None:  # type: ignore[no-untyped-def]
            if payload == b"bad":
                a.ban(peer, "sent bad", seconds=0.5)
            elif payload == b"worse":
                raise PeerMisbehavior("sent worse")

        a.register_channel(CHAT, judge)
        await started(a, b)
        try:
            await b.dial(a.listen_address)
            await connected(a, b)
            b.send(a.node_id, CHAT, b"bad")
            await eventually(lambda: not a.peers and not b.peers)
            assert a.is_banned(node_id=b.node_id, ip="127.0.0.1")
            with pytest.raises((P2PError, OSError)):
                await b.dial(a.listen_address)
                await eventually(lambda: a.node_id not in b.peers, timeout=2)
                raise ConnectionClosed("refused")
            await asyncio.sleep(0.6)
            assert not a.is_banned(node_id=b.node_id, ip="127.0.0.1")
            await b.dial(a.listen_address)
            await connected(a, b)
            b.send(a.node_id, CHAT, b"worse")
            await eventually(lambda: not a.peers)
            assert a.bans.id_ban_remaining(b.node_id) > 30
        finally:
            await stopped(a, b)

    run(main())


def test_persistent_peer_that_starts_late_is_dialed_with_backoff_and_redialed() -> None:
    async def main() -> None:
        b_key = Ed25519PrivateKey.generate()
        probe, _ = make_switch(key=b_key)
        await probe.start()
        b_addr = probe.listen_address
        await probe.stop()  # now nobody listens there

        a, a_in = make_switch(persistent_peers=[str(b_addr)])
        await a.start()
        b: Switch | None = None
        try:
            await asyncio.sleep(0.5)  # a few failed dials with backoff
            assert not a.peers
            b, _ = make_switch(key=b_key, listen_addr=b_addr.hostport)
            await b.start()
            await connected(a, b, timeout=5)
            assert a.peers[b.node_id].persistent and a.peers[b.node_id].outbound
            await b.stop()  # drop it: a must redial when it is back
            await eventually(lambda: not a.peers)
            b, _ = make_switch(key=b_key, listen_addr=b_addr.hostport)
            await b.start()
            await connected(a, b, timeout=5)
            b.send(a.node_id, CHAT, b"back")
            assert await a_in[CHAT].get() == (b.node_id, b"back")
        finally:
            await a.stop()
            if b is not None:
                await b.stop()

    run(main())


def test_simultaneous_dials_leave_one_connection() -> None:
    async def main() -> None:
        (a, _), (b, b_in) = make_switch(), make_switch()
        await started(a, b)
        try:
            await asyncio.gather(
                a.dial(b.listen_address), b.dial(a.listen_address), return_exceptions=True
            )
            await connected(a, b)
            await asyncio.sleep(0.2)
            assert list(a.peers) == [b.node_id] and list(b.peers) == [a.node_id]
            ab, ba = a.peers[b.node_id], b.peers[a.node_id]
            assert ab.outbound != ba.outbound
            a.send(b.node_id, CHAT, b"one link")
            assert await b_in[CHAT].get() == (a.node_id, b"one link")
        finally:
            await stopped(a, b)

    run(main())


def test_inbound_limit_and_seeds() -> None:
    async def main() -> None:
        hub, _ = make_switch(max_inbound=1)
        await hub.start()
        first, _ = make_switch(seeds=[str(hub.listen_address)], max_outbound=1)
        second, _ = make_switch()
        await started(first, second)
        try:
            await connected(hub, first)  # dialed as a seed
            with pytest.raises((P2PError, OSError)):
                await second.dial(hub.listen_address)
                await eventually(lambda: hub.node_id not in second.peers, timeout=2)
                raise ConnectionClosed("refused")
            assert list(hub.peers) == [first.node_id]
            assert not hub.is_banned(ip="127.0.0.1")
            with pytest.raises(PeerRefused, match="outbound"):
                await first.dial(second.listen_address)
        finally:
            await stopped(hub, first, second)

    run(main())


def test_keepalive_keeps_live_peers_and_drops_silent_ones() -> None:
    async def main() -> None:
        a, _ = make_switch(ping_interval=0.1, pong_timeout=0.3)
        b, _ = make_switch(ping_interval=0.1, pong_timeout=0.3)
        await started(a, b)
        try:
            await a.dial(b.listen_address)
            await connected(a, b)
            await asyncio.sleep(1.0)  # several ping/pong rounds
            assert b.node_id in a.peers and a.node_id in b.peers
            silent = RawPeer()
            await silent.connect(a, "127.0.0.6")  # never reads: pings stay unanswered
            await eventually(lambda: silent.node_id in a.peers)
            await eventually(lambda: silent.node_id not in a.peers, timeout=3)
            assert not a.is_banned(node_id=silent.node_id)  # slow is not malicious
        finally:
            await stopped(a, b)

    run(main())


def test_slow_peer_messages_are_dropped_then_it_is_disconnected() -> None:
    async def main() -> None:
        a, _ = make_switch(send_queue_size=4, write_timeout=0.5)
        await a.start()
        try:
            slow = RawPeer()
            await slow.connect(a, "127.0.0.7")  # never reads
            await eventually(lambda: slow.node_id in a.peers)
            peer = a.peers[slow.node_id]
            chunk = b"z" * 60_000
            results = []
            for _ in range(400):
                results.append(a.send(slow.node_id, BLOB, chunk))
                await asyncio.sleep(0)
            assert not all(results)
            assert peer.dropped > 0
            await eventually(lambda: slow.node_id not in a.peers, timeout=5)
            assert not a.is_banned(node_id=slow.node_id)
        finally:
            await a.stop()

    run(main())


def test_config_validation() -> None:
    P2PConfig().validate()
    for bad in (
        {"persistent_peers": ["127.0.0.1:26656"]},
        {"seeds": ["zz@127.0.0.1:1"]},
        {"listen_addr": "nohost"},
        {"ping_interval": 0},
        {"send_queue_size": 0},
    ):
        with pytest.raises(ValueError):
            P2PConfig(**bad).validate()  # type: ignore[arg-type]
    addr = NetAddress.parse("ab" * 20 + "@[::1]:26656")
    assert (addr.host, addr.port, str(addr)) == ("::1", 26656, "ab" * 20 + "@[::1]:26656")
