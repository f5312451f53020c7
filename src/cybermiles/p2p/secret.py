"""SecretConnection: an encrypted, mutually authenticated stream between two nodes.

The design follows CometBFT's ``p2p/conn/secret_connection.go`` (station-to-station with
ephemeral X25519, then the static Ed25519 node keys sign a transcript-bound challenge), with
SHA-256 + HKDF in place of the Merlin transcript and variable-length frames.

Handshake (both sides run the same steps; nothing depends on who dialed)::

    1. send  HELLO = "CMSC" || version (1 byte, = 1) || ephemeral X25519 public key (32 bytes)
       recv  the remote HELLO; check magic and version; refuse a reflected key (remote == ours)
    2. lo, hi     = the two ephemeral keys sorted bytewise
       dh         = X25519(our ephemeral secret, remote ephemeral)   (all-zero result refused)
       transcript = SHA-256(PROTOCOL_LABEL || HELLO(lo) || HELLO(hi))
       okm        = HKDF-SHA256(ikm=dh, salt=transcript, info=KDF_INFO, length=96)
       okm[0:32]  key for frames sent by the lo side, okm[32:64] by the hi side
       okm[64:96] challenge
    3. over the encrypted channel, send one message AUTH = static Ed25519 public key (32) ||
       Ed25519 signature of (AUTH_LABEL || challenge) (64); verify the remote AUTH.

Frames (after step 2, in each direction independently)::

    frame = u16-LE ciphertext length || ChaCha20-Poly1305(key, nonce, plaintext, aad=length)
    nonce = 4 zero bytes || u64-LE frame counter (0, 1, 2, ...; never reused; at 2**64 the
            connection ends with NonceExhausted)
    plaintext is 1..MAX_FRAME_PAYLOAD (16 KiB) bytes.

Messages (``write_message``/``read_message``) are ``u32-LE length || body``. A message starts at a
frame boundary; every frame of a message but the last is exactly MAX_FRAME_PAYLOAD bytes and the
last ends exactly at the end of the message, so the encoding of a message is unique. Any
violation, decryption failure or EOF inside a frame raises and closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import (
    AuthenticationError,
    BadHello,
    ConnectionClosed,
    DecryptError,
    FrameError,
    HandshakeTimeout,
    MessageTooLarge,
    NonceExhausted,
    P2PError,
)
from .keys import node_id, public_key_bytes

MAGIC = b"CMSC"
VERSION = 1
HELLO_SIZE = len(MAGIC) + 1 + 32
PROTOCOL_LABEL = b"cybermiles/p2p/secret-connection/v1"
KDF_INFO = b"cybermiles/p2p/secret-connection/v1/keys+challenge"
AUTH_LABEL = b"cybermiles/p2p/secret-connection/v1/auth"
AUTH_SIZE = 32 + 64

MAX_FRAME_PAYLOAD = 16 * 1024
TAG_SIZE = 16
FRAME_HEADER_SIZE = 2
MESSAGE_HEADER_SIZE = 4
NONCE_LIMIT = 2**64
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
DEFAULT_HANDSHAKE_TIMEOUT = 10.0

LimitFor = Callable[[bytes], int]
"""Given the first bytes of a message body (at most one frame's worth), the size limit for it."""


def _nonce(counter: int) -> bytes:
    return b"\x00\x00\x00\x00" + counter.to_bytes(8, "little")


def _hello(ephemeral_public: bytes) -> bytes:
    return MAGIC + bytes([VERSION]) + ephemeral_public


def parse_hello(data: bytes) -> bytes:
    """The ephemeral public key in a HELLO; BadHello if magic, version or size are wrong."""
    if len(data) != HELLO_SIZE or data[: len(MAGIC)] != MAGIC:
        raise BadHello("not a cybermiles secret connection (bad magic)")
    if data[len(MAGIC)] != VERSION:
        raise BadHello(f"unsupported secret connection version {data[len(MAGIC)]}")
    return data[len(MAGIC) + 1 :]


def derive_secrets(dh_secret: bytes, local_hello: bytes, remote_hello: bytes) -> tuple[bytes, ...]:
    """(send_key, recv_key, challenge) for the side that sent ``local_hello``.

    The HKDF salt is the transcript hash of both hellos, so keys and challenge are bound to
    this exchange; the lo side (bytewise-smaller ephemeral key) sends with okm[0:32].
    """
    lo, hi = sorted((local_hello, remote_hello))
    transcript = hashlib.sha256(PROTOCOL_LABEL + lo + hi).digest()
    okm = HKDF(algorithm=hashes.SHA256(), length=96, salt=transcript, info=KDF_INFO).derive(
        dh_secret
    )
    lo_key, hi_key, challenge = okm[:32], okm[32:64], okm[64:]
    if local_hello == lo:
        return lo_key, hi_key, challenge
    return hi_key, lo_key, challenge


def _close_writer(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        # abort: drop unsent data; a misbehaving or failed peer gets nothing more from us.
        transport.abort()


class SecretConnection:
    """An authenticated encrypted message stream. Create it with :meth:`handshake`.

    ``remote_public_key`` / ``remote_node_id`` are the authenticated identity of the peer.
    Reading and writing may run concurrently (one reader, any number of writers).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        send_key: bytes,
        recv_key: bytes,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._send_aead = ChaCha20Poly1305(send_key)
        self._recv_aead = ChaCha20Poly1305(recv_key)
        self._send_counter = 0
        self._recv_counter = 0
        self._write_lock = asyncio.Lock()
        self.max_message_size = max_message_size
        self.remote_public_key = b""
        self.remote_node_id = ""
        self.closed = False

    # -- handshake -------------------------------------------------------------------------

    @classmethod
    async def handshake(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        node_key: Ed25519PrivateKey,
        *,
        timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> SecretConnection:
        """Run the handshake over a fresh TCP stream; on any failure the stream is closed.

        Raises
        ------
        HandshakeTimeout
            Not done within ``timeout`` seconds.
        BadHello
            The remote's first bytes are not a valid hello.
        AuthenticationError
            Low-order or reflected ephemeral key, malformed AUTH, or a bad signature.
        DecryptError, FrameError, ConnectionClosed
            The AUTH frame failed to decrypt, was malformed, or the stream ended.
        """
        try:
            async with asyncio.timeout(timeout):
                return await cls._handshake(reader, writer, node_key, max_message_size)
        except TimeoutError as exc:
            _close_writer(writer)
            raise HandshakeTimeout(f"secret connection handshake took over {timeout}s") from exc
        except (P2PError, OSError) as exc:
            _close_writer(writer)
            if isinstance(exc, OSError):
                raise ConnectionClosed(f"handshake: {exc}") from exc
            raise

    @classmethod
    async def _handshake(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        node_key: Ed25519PrivateKey,
        max_message_size: int,
    ) -> SecretConnection:
        ephemeral = X25519PrivateKey.generate()
        local_hello = _hello(ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
        writer.write(local_hello)
        await writer.drain()
        remote_hello = await _read_exactly(reader, HELLO_SIZE, "hello")
        remote_ephemeral = parse_hello(remote_hello)
        if hmac.compare_digest(remote_hello, local_hello):
            raise AuthenticationError("remote reflected our ephemeral key")
        try:
            dh_secret = ephemeral.exchange(X25519PublicKey.from_public_bytes(remote_ephemeral))
        except ValueError as exc:  # OpenSSL refuses an all-zero shared secret (low-order point)
            raise AuthenticationError("low-order ephemeral key") from exc
        if dh_secret == bytes(32):
            raise AuthenticationError("low-order ephemeral key")
        send_key, recv_key, challenge = derive_secrets(dh_secret, local_hello, remote_hello)
        conn = cls(reader, writer, send_key, recv_key, max_message_size=max_message_size)

        local_public = public_key_bytes(node_key)
        await conn.write_message(local_public + node_key.sign(AUTH_LABEL + challenge))
        auth = await conn.read_message(limit=lambda _head: AUTH_SIZE)
        if len(auth) != AUTH_SIZE:
            raise AuthenticationError(f"AUTH message has {len(auth)} bytes, expected {AUTH_SIZE}")
        remote_public, signature = auth[:32], auth[32:]
        try:
            Ed25519PublicKey.from_public_bytes(remote_public).verify(
                signature, AUTH_LABEL + challenge
            )
        except (InvalidSignature, ValueError) as exc:
            raise AuthenticationError("the remote's challenge signature is invalid") from exc
        conn.remote_public_key = remote_public
        conn.remote_node_id = node_id(remote_public)
        return conn

    # -- frames ----------------------------------------------------------------------------

    def _seal_frame(self, plaintext: bytes) -> bytes:
        if self._send_counter >= NONCE_LIMIT:
            self._fail()
            raise NonceExhausted("send nonce space exhausted")
        header = (len(plaintext) + TAG_SIZE).to_bytes(FRAME_HEADER_SIZE, "little")
        sealed = self._send_aead.encrypt(_nonce(self._send_counter), plaintext, header)
        self._send_counter += 1
        return header + sealed

    async def _read_frame(self) -> bytes:
        header = await _read_exactly(self._reader, FRAME_HEADER_SIZE, "frame header")
        length = int.from_bytes(header, "little")
        if not TAG_SIZE < length <= MAX_FRAME_PAYLOAD + TAG_SIZE:
            raise FrameError(f"frame length {length} out of range")
        sealed = await _read_exactly(self._reader, length, "frame")
        if self._recv_counter >= NONCE_LIMIT:
            raise NonceExhausted("receive nonce space exhausted")
        try:
            plaintext = self._recv_aead.decrypt(_nonce(self._recv_counter), sealed, header)
        except InvalidTag as exc:
            raise DecryptError("frame failed authentication") from exc
        self._recv_counter += 1
        return plaintext

    # -- messages --------------------------------------------------------------------------

    def buffer_message(self, body: bytes) -> None:
        """Seal ``body`` into frames and hand them to the transport (no flow control).

        Call :meth:`drain` afterwards. Raises MessageTooLarge for a body over the limit (our
        own bug, the connection stays open) and ConnectionClosed after close.
        """
        if self.closed:
            raise ConnectionClosed("connection is closed")
        if len(body) > self.max_message_size:
            raise MessageTooLarge(f"message of {len(body)} bytes > {self.max_message_size}")
        data = len(body).to_bytes(MESSAGE_HEADER_SIZE, "little") + body
        frames = [
            self._seal_frame(data[i : i + MAX_FRAME_PAYLOAD])
            for i in range(0, len(data), MAX_FRAME_PAYLOAD)
        ]
        self._writer.write(b"".join(frames))

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark."""
        try:
            await self._writer.drain()
        except (OSError, RuntimeError) as exc:
            self._fail()
            raise ConnectionClosed(f"write failed: {exc}") from exc

    async def write_message(self, body: bytes) -> None:
        """Send one message (``buffer_message`` + ``drain``)."""
        async with self._write_lock:
            self.buffer_message(body)
            await self.drain()

    async def read_message(self, limit: LimitFor | None = None) -> bytes:
        """Read one message. ``limit`` may lower the size limit based on the message's head.

        Raises
        ------
        ConnectionClosed
            EOF (also inside a frame: a truncated frame) or the connection was closed.
        DecryptError
            A frame failed authentication (tampered, reordered or wrong key).
        FrameError, MessageTooLarge
            Bad frame lengths, a message crossing frame bounds, or over the size limit.

        Every error closes the connection.
        """
        try:
            return await self._read_message(limit)
        except P2PError:
            self._fail()
            raise

    async def _read_message(self, limit: LimitFor | None) -> bytes:
        if self.closed:
            raise ConnectionClosed("connection is closed")
        first = await self._read_frame()
        if len(first) < MESSAGE_HEADER_SIZE:
            raise FrameError("first frame of a message is shorter than its length header")
        size = int.from_bytes(first[:MESSAGE_HEADER_SIZE], "little")
        total = MESSAGE_HEADER_SIZE + size
        if len(first) > total:
            raise FrameError("frame extends past the end of its message")
        if len(first) < total and len(first) != MAX_FRAME_PAYLOAD:
            raise FrameError("a non-final frame of a message is not full")
        cap = self.max_message_size
        if limit is not None:
            cap = min(cap, limit(first[MESSAGE_HEADER_SIZE:]))
        if size > cap:
            raise MessageTooLarge(f"message of {size} bytes > limit {cap}")
        parts = [first[MESSAGE_HEADER_SIZE:]]
        received = len(first)
        while received < total:
            frame = await self._read_frame()
            received += len(frame)
            if received > total:
                raise FrameError("frame extends past the end of its message")
            if received < total and len(frame) != MAX_FRAME_PAYLOAD:
                raise FrameError("a non-final frame of a message is not full")
            parts.append(frame)
        return b"".join(parts)

    # -- lifecycle -------------------------------------------------------------------------

    def _fail(self) -> None:
        self.closed = True
        _close_writer(self._writer)

    def close(self) -> None:
        """Close the connection (pending writes are flushed by the transport if possible)."""
        if not self.closed:
            self.closed = True
            self._writer.close()

    def abort(self) -> None:
        """Close the connection at once, dropping unsent data."""
        self._fail()

    async def wait_closed(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            await self._writer.wait_closed()

    @property
    def remote_address(self) -> tuple[str, int]:
        peer = self._writer.get_extra_info("peername") or ("", 0)
        return str(peer[0]), int(peer[1])


async def _read_exactly(reader: asyncio.StreamReader, size: int, what: str) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ConnectionClosed(f"truncated {what}: {len(exc.partial)} of {size} bytes") from exc
        raise ConnectionClosed(f"connection closed (reading {what})") from exc
    except OSError as exc:
        raise ConnectionClosed(f"connection lost (reading {what}): {exc}") from exc
