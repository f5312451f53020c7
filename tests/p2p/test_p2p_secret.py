"""SecretConnection: handshake, framing, and every way a remote can break it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from p2p_helpers import run, track

from cybermiles.p2p import (
    MAX_FRAME_PAYLOAD,
    AuthenticationError,
    BadHello,
    ConnectionClosed,
    DecryptError,
    FrameError,
    HandshakeTimeout,
    MessageTooLarge,
    NonceExhausted,
    SecretConnection,
    node_id_of,
)
from cybermiles.p2p.secret import MAGIC, VERSION, derive_secrets

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def stream_pair() -> tuple[Streams, Streams, asyncio.Server]:
    accepted: asyncio.Future[Streams] = asyncio.get_running_loop().create_future()

    async def on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result((reader, writer))

    server = await asyncio.start_server(on_accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = await asyncio.open_connection("127.0.0.1", port)
    served = await accepted
    track(client[1])
    track(served[1])
    return client, served, server


async def secret_pair(
    **kwargs: object,
) -> tuple[SecretConnection, SecretConnection, Ed25519PrivateKey, Ed25519PrivateKey]:
    (cr, cw), (sr, sw), server = await stream_pair()
    server.close()
    ck, sk = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    client, srv = await asyncio.gather(
        SecretConnection.handshake(cr, cw, ck, **kwargs),  # type: ignore[arg-type]
        SecretConnection.handshake(sr, sw, sk, **kwargs),  # type: ignore[arg-type]
    )
    return client, srv, ck, sk


def hello(x25519: X25519PrivateKey | None = None, raw: bytes | None = None) -> bytes:
    if raw is None:
        assert x25519 is not None
        raw = x25519.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return MAGIC + bytes([VERSION]) + raw


def test_derived_keys_mirror_each_other() -> None:
    a, b = hello(raw=b"\x01" * 32), hello(raw=b"\x02" * 32)
    send_a, recv_a, challenge_a = derive_secrets(b"s" * 32, a, b)
    send_b, recv_b, challenge_b = derive_secrets(b"s" * 32, b, a)
    assert (send_a, recv_a, challenge_a) == (recv_b, send_b, challenge_b)
    assert len({send_a, recv_a, challenge_a}) == 3
    assert derive_secrets(b"t" * 32, a, b)[2] != challenge_a


def test_handshake_authenticates_both_keys_and_messages_round_trip() -> None:
    async def main() -> None:
        client, server, ck, sk = await secret_pair()
        assert client.remote_node_id == node_id_of(sk)
        assert server.remote_node_id == node_id_of(ck)
        sizes = [0, 1, MAX_FRAME_PAYLOAD - 4, MAX_FRAME_PAYLOAD - 3, 3 * MAX_FRAME_PAYLOAD, 10**6]
        bodies = [os.urandom(n) for n in sizes]
        for body in bodies:
            await client.write_message(body)
        for body in bodies:
            assert await server.read_message() == body
        await server.write_message(b"pong")
        assert await client.read_message() == b"pong"
        client.close()
        with pytest.raises(ConnectionClosed):
            await server.read_message()

    run(main())


async def expect_server_error(
    attack: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    error: type[Exception],
    timeout: float = 3.0,
) -> None:
    """Run a hand-written client against a real SecretConnection server handshake."""
    (cr, cw), (sr, sw), server = await stream_pair()
    server.close()
    handshake = asyncio.ensure_future(
        SecretConnection.handshake(sr, sw, Ed25519PrivateKey.generate(), timeout=timeout)
    )
    await attack(cr, cw)
    with pytest.raises(error):
        await handshake
    assert sw.transport.is_closing()
    cw.close()


def test_garbage_instead_of_hello_is_bad_hello() -> None:
    async def attack(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n" + b"\x00" * 10)

    async def wrong_version(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(MAGIC + b"\x02" + b"\x09" * 32)

    run(expect_server_error(attack, BadHello))
    run(expect_server_error(wrong_version, BadHello))


def test_low_order_and_reflected_ephemeral_keys_are_refused() -> None:
    async def zero_key(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(hello(raw=bytes(32)))

    async def reflect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(len(MAGIC) + 33))

    run(expect_server_error(zero_key, AuthenticationError))
    run(expect_server_error(reflect, AuthenticationError))


def test_signature_by_another_key_is_refused() -> None:
    async def attack(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Claim the identity of `victim` but sign with `attacker`: a correct handshake otherwise.
        ephemeral = X25519PrivateKey.generate()
        ours = hello(ephemeral)
        writer.write(ours)
        theirs = await reader.readexactly(len(ours))
        from cybermiles.p2p.secret import AUTH_LABEL, X25519PublicKey

        dh = ephemeral.exchange(X25519PublicKey.from_public_bytes(theirs[5:]))
        send, recv, challenge = derive_secrets(dh, ours, theirs)
        conn = SecretConnection(reader, writer, send, recv)
        victim, attacker = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        victim_pub = victim.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        conn.buffer_message(victim_pub + attacker.sign(AUTH_LABEL + challenge))

    run(expect_server_error(attack, AuthenticationError))


def test_silent_or_truncated_handshake() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass

    async def half_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(hello(raw=b"\x05" * 32)[:20])
        writer.write_eof()

    run(expect_server_error(silent, HandshakeTimeout, timeout=0.3))
    run(expect_server_error(half_hello, ConnectionClosed))


def test_tampered_frame_is_a_decrypt_error_and_closes() -> None:
    async def main() -> None:
        client, server, _, _ = await secret_pair()
        frame = bytearray(client._seal_frame(b"\x05\x00\x00\x00hello"))
        frame[7] ^= 0x01
        client._writer.write(bytes(frame))
        with pytest.raises(DecryptError):
            await server.read_message()
        assert server.closed
        with pytest.raises(ConnectionClosed):
            await server.read_message()

    run(main())


def test_replayed_frame_fails_because_nonces_advance() -> None:
    async def main() -> None:
        client, server, _, _ = await secret_pair()
        frame = client._seal_frame(b"\x01\x00\x00\x00x")
        client._writer.write(frame + frame)
        assert await server.read_message() == b"x"
        with pytest.raises(DecryptError):
            await server.read_message()

    run(main())


def test_truncated_frame_then_eof_is_connection_closed() -> None:
    async def main() -> None:
        client, server, _, _ = await secret_pair()
        frame = client._seal_frame(b"\x05\x00\x00\x00hello")
        client._writer.write(frame[:-3])
        client._writer.write_eof()
        with pytest.raises(ConnectionClosed, match="truncated"):
            await server.read_message()

    run(main())


def test_bad_frame_and_message_layouts_are_frame_errors() -> None:
    def too_long(client: SecretConnection) -> bytes:
        return (MAX_FRAME_PAYLOAD + 17).to_bytes(2, "little")

    def too_short(client: SecretConnection) -> bytes:
        return (16).to_bytes(2, "little") + b"\x00" * 16

    def no_header(client: SecretConnection) -> bytes:
        return client._seal_frame(b"\x01\x00")

    def past_end(client: SecretConnection) -> bytes:
        return client._seal_frame(b"\x01\x00\x00\x00ab")

    def short_middle(client: SecretConnection) -> bytes:
        size = (2 * MAX_FRAME_PAYLOAD).to_bytes(4, "little")
        return client._seal_frame(size + b"a" * 100) + client._seal_frame(b"b" * 100)

    async def main() -> None:
        for make in (too_long, too_short, no_header, past_end, short_middle):
            client, server, _, _ = await secret_pair()
            client._writer.write(make(client))
            with pytest.raises(FrameError):
                await server.read_message()
            assert server.closed, make.__name__

    run(main())


def test_oversize_messages_are_refused_before_being_read() -> None:
    async def main() -> None:
        client, server, _, _ = await secret_pair(max_message_size=1000)
        with pytest.raises(MessageTooLarge):
            client.buffer_message(b"x" * 1001)
        assert not client.closed  # our own oversize message is a local bug, not fatal
        big = (10**9).to_bytes(4, "little") + b"x" * (MAX_FRAME_PAYLOAD - 4)
        client._writer.write(client._seal_frame(big))
        with pytest.raises(MessageTooLarge):
            await server.read_message()
        client2, server2, _, _ = await secret_pair()
        await client2.write_message(b"\x07" + b"y" * 50)
        with pytest.raises(MessageTooLarge):
            await server2.read_message(limit=lambda head: 10 if head[:1] == b"\x07" else 100)

    run(main())


def test_nonce_exhaustion_closes_instead_of_reusing() -> None:
    async def main() -> None:
        client, server, _, _ = await secret_pair()
        client._send_counter = 2**64 - 1
        await client.write_message(b"last")  # uses the final nonce
        with pytest.raises(NonceExhausted):
            await client.write_message(b"one too many")
        assert client.closed
        server._recv_counter = 2**64 - 1
        assert await server.read_message() == b"last"

    run(main())
