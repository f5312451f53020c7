"""Write-ahead log of consensus inputs, so a restarted validator resumes where it stopped.

The reactor writes every input (peer message, timeout, its own vote or proposal) *before* the
state machine handles it; payloads are opaque bytes to the WAL. After a restart it replays the
records written since the last end-height marker through the same handler.

Durability (what survives what):

* :meth:`WAL.write` hands the record to the OS at once (no user-space buffer): it survives a
  crash of the process, not a power loss. Use it for peer messages and timeouts.
* :meth:`WAL.write_sync` and :meth:`WAL.write_end_height` also ``fsync``: use them for the
  node's own signed messages *before* sending them, and for the end of a height.

On-disk format: a directory of segments ``wal-00000000.log``, ``wal-00000001.log``, ... each a
sequence of records, never split across segments::

    crc32 (4 bytes, big endian) | length (4 bytes, big endian) | kind (1 byte) | payload

where ``crc32`` is zlib's CRC-32 of ``length | kind | payload`` and ``length`` is the payload
size (at most :data:`MAX_PAYLOAD_SIZE`). Kinds: ``MESSAGE`` (opaque payload) and
``END_HEIGHT`` (payload: the height as 8 bytes big endian; "height h is committed, what
follows belongs to h + 1"). A new WAL starts with ``END_HEIGHT(0)``. A segment is fsynced
before the next one is created.

Recovery on open: a damaged *tail* of the last segment (a record cut short, or a bad last
record followed by nothing but zero bytes) is what a crash during a write leaves behind; it is
truncated and reported in :attr:`WAL.recovery`. Damage anywhere else means the disk or a person
changed the log: :class:`WALCorruption`, naming the segment and offset; nothing is truncated.
"""

from __future__ import annotations

import enum
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from types import TracebackType

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "MAX_PAYLOAD_SIZE",
    "WAL",
    "RecordKind",
    "TornTail",
    "WALCorruption",
    "WALError",
    "WALRecord",
    "WALReplay",
]

MAX_PAYLOAD_SIZE = 1 << 20  # 1 MiB, like CometBFT's maxMsgSizeBytes
DEFAULT_SEGMENT_SIZE = 16 << 20
_HEADER = struct.Struct(">IIB")  # crc32, length, kind
_SEGMENT_RE = re.compile(r"^wal-(\d{8})\.log$")


class WALError(Exception):
    """The WAL cannot be used (I/O failure, closed, or a record too large)."""


class WALCorruption(WALError):
    """A record that is damaged where a crash cannot have damaged it."""


class RecordKind(enum.IntEnum):
    MESSAGE = 1
    END_HEIGHT = 2


_KINDS = frozenset(int(k) for k in RecordKind)


@dataclass(frozen=True, slots=True)
class WALRecord:
    kind: RecordKind
    payload: bytes

    @property
    def height(self) -> int:
        """The height of an ``END_HEIGHT`` record."""
        if self.kind != RecordKind.END_HEIGHT:
            raise ValueError("only END_HEIGHT records have a height")
        return int.from_bytes(self.payload, "big")


@dataclass(frozen=True, slots=True)
class TornTail:
    """What recovery cut off the end of the last segment."""

    segment: Path
    offset: int  # where the segment now ends
    dropped_bytes: int
    reason: str


@dataclass(frozen=True, slots=True)
class WALReplay:
    """The inputs to replay: everything after the last end-height marker."""

    end_height: int | None  # the last committed height marked in the log (None: no marker)
    messages: tuple[bytes, ...]


def _encode_record(kind: RecordKind, payload: bytes) -> bytes:
    body = struct.pack(">IB", len(payload), kind) + payload
    return struct.pack(">I", zlib.crc32(body)) + body


def _segment_name(index: int) -> str:
    return f"wal-{index:08d}.log"


@dataclass(frozen=True, slots=True)
class _Damage:
    offset: int
    reason: str
    torn: bool  # could a crash during an append have left this?


def _zeros_from(data: bytes, offset: int) -> bool:
    """Whether everything from ``offset`` on is zero bytes (space a crash left unwritten)."""
    return not data[offset:].strip(b"\0")


def _parse(data: bytes) -> tuple[list[WALRecord], _Damage | None]:
    """All good records of a segment, and the first damage found (if any)."""
    records: list[WALRecord] = []
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < _HEADER.size:
            return records, _Damage(offset, "incomplete record header", torn=True)
        crc, length, kind = _HEADER.unpack_from(data, offset)
        if length > MAX_PAYLOAD_SIZE or kind not in _KINDS:
            reason = f"bad record header (length {length}, kind {kind})"
            return records, _Damage(offset, reason, torn=_zeros_from(data, offset))
        record_end = offset + _HEADER.size + length
        if record_end > end:
            return records, _Damage(offset, "incomplete record body", torn=True)
        if zlib.crc32(data[offset + 4 : record_end]) != crc:
            torn = record_end == end or _zeros_from(data, offset)
            return records, _Damage(offset, "record checksum mismatch", torn=torn)
        records.append(WALRecord(RecordKind(kind), bytes(data[offset + _HEADER.size : record_end])))
        offset = record_end
    return records, None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WAL:
    """An append-only, segmented, checksummed log (see the module docstring).

    Parameters
    ----------
    directory
        Where the segments live; created if missing.
    segment_size
        A new segment is started once the current one reaches this many bytes.

    Raises
    ------
    WALCorruption
        A damaged record that is not a torn tail, or a gap in the segment numbers.
    WALError
        The directory or a segment cannot be read or written.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, segment_size: int = DEFAULT_SEGMENT_SIZE
    ) -> None:
        if segment_size <= 0:
            raise ValueError("segment_size must be positive")
        self.directory = Path(directory)
        self.segment_size = segment_size
        self.recovery: TornTail | None = None
        self._fd: int | None = None
        self._failed: str | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._open()
        except OSError as e:
            raise WALError(f"cannot open the WAL in {self.directory}: {e}") from e

    # --- opening and recovery ---------------------------------------------------------------

    def _segments(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.iterdir():
            m = _SEGMENT_RE.match(path.name)
            if m:
                found.append((int(m.group(1)), path))
        found.sort()
        for (a, _), (b, path) in pairwise(found):
            if b != a + 1:
                raise WALCorruption(f"WAL segment missing before {path}")
        return found

    def _open(self) -> None:
        segments = self._segments()
        total_records = 0
        for i, (_, path) in enumerate(segments):
            data = path.read_bytes()
            records, damage = _parse(data)
            total_records += len(records)
            if damage is None:
                continue
            is_last = i == len(segments) - 1
            if not (is_last and damage.torn):
                raise WALCorruption(f"{path} is corrupt at offset {damage.offset}: {damage.reason}")
            self._truncate(path, damage.offset)
            self.recovery = TornTail(path, damage.offset, len(data) - damage.offset, damage.reason)
        if not segments:
            segments = [(0, self.directory / _segment_name(0))]
        self._index, self._path = segments[-1]
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        _fsync_dir(self.directory)
        if total_records == 0:
            self.write_end_height(0)

    @staticmethod
    def _truncate(path: Path, offset: int) -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        finally:
            os.close(fd)

    # --- writing ----------------------------------------------------------------------------

    def _append(self, kind: RecordKind, payload: bytes, *, sync: bool) -> None:
        if self._fd is None:
            raise WALError("the WAL is closed")
        if self._failed is not None:
            raise WALError(f"the WAL stopped after a failed write: {self._failed}")
        if len(payload) > MAX_PAYLOAD_SIZE:
            raise WALError(f"WAL record of {len(payload)} bytes exceeds {MAX_PAYLOAD_SIZE}")
        record = _encode_record(kind, payload)
        try:
            if self._size > 0 and self._size + len(record) > self.segment_size:
                self._rotate()
            view = memoryview(record)
            while view:
                view = view[os.write(self._fd, view) :]
            self._size += len(record)
            if sync:
                os.fsync(self._fd)
        except OSError as e:
            # What reached the file is unknown: stop rather than log around a hole.
            self._failed = str(e)
            raise WALError(f"WAL write to {self._path} failed: {e}") from e

    def _rotate(self) -> None:
        assert self._fd is not None
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        self._index += 1
        self._path = self.directory / _segment_name(self._index)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = 0
        _fsync_dir(self.directory)

    def write(self, payload: bytes) -> None:
        """Append a message record (survives a process crash, not a power loss).

        Raises
        ------
        WALError
            Closed, too large, or the write failed (the WAL then refuses further writes).
        """
        self._append(RecordKind.MESSAGE, payload, sync=False)

    def write_sync(self, payload: bytes) -> None:
        """Append a message record and fsync: use before sending our own vote or proposal.

        Raises
        ------
        WALError
            As :meth:`write`, or the fsync failed.
        """
        self._append(RecordKind.MESSAGE, payload, sync=True)

    def write_end_height(self, height: int) -> None:
        """Append (and fsync) the marker "height ``height`` is committed".

        Raises
        ------
        WALError
            As :meth:`write_sync`.
        """
        if not 0 <= height < 2**64:
            raise ValueError(f"height out of range: {height}")
        self._append(RecordKind.END_HEIGHT, height.to_bytes(8, "big"), sync=True)

    def sync(self) -> None:
        """fsync what was written so far (e.g. periodically, or on shutdown)."""
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        """fsync and close; further writes raise :class:`WALError`."""
        if self._fd is not None:
            try:
                if self._failed is None:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> WAL:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- reading ----------------------------------------------------------------------------

    def _read_segments(self) -> Iterator[tuple[int, list[WALRecord]]]:
        for index, path in self._segments():
            records, damage = _parse(path.read_bytes())
            if damage is not None:
                raise WALCorruption(f"{path} is corrupt at offset {damage.offset}: {damage.reason}")
            yield index, records

    def records(self) -> Iterator[WALRecord]:
        """Every record, oldest first.

        Raises
        ------
        WALCorruption
            If a segment was damaged after the WAL was opened.
        """
        for _, records in self._read_segments():
            yield from records

    def replay(self) -> WALReplay:
        """The messages written after the last end-height marker (what to replay on restart)."""
        end_height: int | None = None
        messages: list[bytes] = []
        for record in self.records():
            if record.kind == RecordKind.END_HEIGHT:
                end_height = record.height
                messages = []
            else:
                messages.append(record.payload)
        return WALReplay(end_height, tuple(messages))

    def search_end_height(self, height: int) -> tuple[bytes, ...] | None:
        """The messages between ``END_HEIGHT(height)`` and the next marker, or None if the
        marker is not in the log (CometBFT ``SearchForEndHeight``)."""
        found = False
        messages: list[bytes] = []
        for record in self.records():
            if record.kind == RecordKind.END_HEIGHT:
                if found:
                    break
                found = record.height == height
            elif found:
                messages.append(record.payload)
        return tuple(messages) if found else None

    def prune(self, height: int) -> int:
        """Delete the segments entirely before the one holding ``END_HEIGHT(height)`` (the
        current segment is never deleted). Returns how many were deleted; 0 if the marker is
        not found."""
        keep_from: int | None = None
        for index, records in self._read_segments():
            if keep_from is None and any(
                r.kind == RecordKind.END_HEIGHT and r.height == height for r in records
            ):
                keep_from = index
        if keep_from is None:
            return 0
        removed = 0
        for index, path in self._segments():
            if index < keep_from and index < self._index:
                path.unlink()
                removed += 1
        if removed:
            _fsync_dir(self.directory)
        return removed
