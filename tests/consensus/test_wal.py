"""The consensus WAL: records, segments, replay, and recovery after a crash at every write."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cybermiles.consensus import wal as wal_module
from cybermiles.consensus.wal import (
    MAX_PAYLOAD_SIZE,
    WAL,
    RecordKind,
    WALCorruption,
    WALError,
    WALRecord,
    WALReplay,
)

Event = tuple[str, object]  # ("msg", bytes) | ("sync", bytes) | ("end", int)

EVENTS: list[Event] = [
    ("msg", b"proposal h1"),
    ("msg", b"prevote h1 v1"),
    ("sync", b"own prevote h1"),
    ("msg", b"timeout h1 r0 prevote"),
    ("sync", b"own precommit h1"),
    ("end", 1),
    ("msg", b"proposal h2"),
    ("msg", b""),  # empty payloads are legal
    ("sync", b"own prevote h2 " + bytes(range(256))),
    ("end", 2),
    ("msg", b"proposal h3"),
    ("msg", b"precommit h3 v2"),
]


def write_events(w: WAL, events: list[Event]) -> None:
    for kind, value in events:
        if kind == "msg":
            w.write(value)  # type: ignore[arg-type]
        elif kind == "sync":
            w.write_sync(value)  # type: ignore[arg-type]
        else:
            w.write_end_height(value)  # type: ignore[arg-type]


def expected_replay(events: list[Event]) -> WALReplay:
    end, messages = 0, []  # a new WAL starts with END_HEIGHT(0)
    for kind, value in events:
        if kind == "end":
            end, messages = value, []
        else:
            messages.append(value)
    return WALReplay(end, tuple(messages))  # type: ignore[arg-type]


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("wal-*.log"))


def test_new_wal_starts_at_height_zero(tmp_path: Path) -> None:
    with WAL(tmp_path / "wal") as w:
        assert w.replay() == WALReplay(0, ())
        assert list(w.records()) == [WALRecord(RecordKind.END_HEIGHT, (0).to_bytes(8, "big"))]
        assert w.recovery is None


def test_write_and_replay_after_last_end_height(tmp_path: Path) -> None:
    with WAL(tmp_path) as w:
        write_events(w, EVENTS)
        assert w.replay() == expected_replay(EVENTS)
        assert w.replay() == WALReplay(2, (b"proposal h3", b"precommit h3 v2"))
        assert w.search_end_height(1) == (
            b"proposal h2",
            b"",
            b"own prevote h2 " + bytes(range(256)),
        )
        assert w.search_end_height(0)[-1] == b"own precommit h1"  # type: ignore[index]
        assert w.search_end_height(7) is None
    # Reopen: same content; appending continues the log.
    with WAL(tmp_path) as w:
        assert w.recovery is None
        assert w.replay() == expected_replay(EVENTS)
        w.write(b"after restart")
        w.write_end_height(3)
        assert w.replay() == WALReplay(3, ())
    assert [r.kind for r in WAL(tmp_path).records()].count(RecordKind.END_HEIGHT) == 4


def test_segments_rotate_and_prune(tmp_path: Path) -> None:
    events: list[Event] = []
    for h in range(1, 21):
        events += [
            ("msg", f"proposal {h}".encode() * 3),
            ("sync", f"vote {h}".encode()),
            ("end", h),
        ]
    with WAL(tmp_path, segment_size=200) as w:
        write_events(w, events)
        assert len(segment_files(tmp_path)) > 5
        assert all(p.stat().st_size <= 200 for p in segment_files(tmp_path)[:-1])
        assert w.replay() == WALReplay(20, ())
        assert w.search_end_height(10) == (b"proposal 11" * 3, b"vote 11")
    with WAL(tmp_path, segment_size=200) as w:
        assert w.replay() == WALReplay(20, ())
        before = len(segment_files(tmp_path))
        removed = w.prune(15)
        assert removed > 0 and len(segment_files(tmp_path)) == before - removed
        assert w.search_end_height(15) == (b"proposal 16" * 3, b"vote 16")
        assert w.search_end_height(2) is None
        assert w.prune(999) == 0
    assert WAL(tmp_path, segment_size=200).replay() == WALReplay(20, ())


@pytest.fixture
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Crash tests model a dead process (the bytes on disk are what they are): fsync's cost
    adds nothing to them, so skip it."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def _crash_copy(src: Path, dst: Path, segment: Path, size: int) -> None:
    """``dst`` = the WAL in ``src`` as a crash would leave it: ``segment`` cut at ``size``."""
    shutil.copytree(src, dst)
    with open(dst / segment.name, "r+b") as f:
        f.truncate(size)


@pytest.mark.usefixtures("no_fsync")
def test_crash_at_every_write_and_every_byte(tmp_path: Path) -> None:
    """Cut the log at every record boundary (crash between writes) and inside every record (crash
    during a write): reopening always yields the replay of exactly the complete writes, reports
    a torn tail only when a record was cut, and the log keeps working afterwards."""
    src = tmp_path / "src"
    boundaries = []  # file size after the initial marker and after each event
    with WAL(src) as w:
        boundaries.append(segment_files(src)[0].stat().st_size)
        for event in EVENTS:
            write_events(w, [event])
            boundaries.append(segment_files(src)[0].stat().st_size)
    segment = segment_files(src)[0]
    for cut in range(boundaries[-1] + 1):
        complete = sum(1 for b in boundaries[1:] if b <= cut)  # events fully on disk
        case = tmp_path / f"cut-{cut}"
        _crash_copy(src, case, segment, cut)
        with WAL(case) as w:
            assert w.replay() == expected_replay(EVENTS[:complete]), cut
            on_boundary = cut in boundaries or cut == 0
            assert (w.recovery is None) == on_boundary, cut
            if w.recovery is not None:
                assert w.recovery.offset == max([0] + [b for b in boundaries if b <= cut])
                assert w.recovery.dropped_bytes == cut - w.recovery.offset
            w.write_sync(b"next")
        # The repaired log is clean and ends with the new record.
        with WAL(case) as w:
            assert w.recovery is None
            assert w.replay().messages[-1] == b"next"
        shutil.rmtree(case)


@pytest.mark.usefixtures("no_fsync")
def test_crash_in_last_of_several_segments(tmp_path: Path) -> None:
    src = tmp_path / "src"
    events: list[Event] = [("msg", bytes([i]) * 40) for i in range(12)] + [("end", 1)]
    events += [("msg", b"tail one"), ("sync", b"tail two")]
    with WAL(src, segment_size=150) as w:
        write_events(w, events)
    segments = segment_files(src)
    assert len(segments) > 2
    last = segments[-1]
    size = last.stat().st_size
    for cut in range(size + 1):
        case = tmp_path / f"cut-{cut}"
        _crash_copy(src, case, last, cut)
        w = WAL(case, segment_size=150)
        replay = w.replay()
        records = list(w.records())
        # A prefix of what was written, and all earlier segments intact.
        assert [r.payload for r in records if r.kind == RecordKind.MESSAGE] == [
            e[1] for e in events if e[0] != "end"
        ][: len([r for r in records if r.kind == RecordKind.MESSAGE])]
        assert replay.end_height in (0, 1)
        w.close()
        shutil.rmtree(case)


def test_zero_filled_tail_is_torn(tmp_path: Path) -> None:
    with WAL(tmp_path) as w:
        write_events(w, EVENTS)
    seg = segment_files(tmp_path)[0]
    size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(b"\0" * 4096)  # file length grew but the data never made it
    w = WAL(tmp_path)
    assert w.recovery is not None and w.recovery.offset == size
    assert w.recovery.dropped_bytes == 4096
    assert w.replay() == expected_replay(EVENTS)
    assert seg.stat().st_size == size


def test_garbage_last_record_is_torn(tmp_path: Path) -> None:
    with WAL(tmp_path) as w:
        write_events(w, EVENTS)
    seg = segment_files(tmp_path)[0]
    size = seg.stat().st_size
    data = bytearray(seg.read_bytes())
    data[-3] ^= 0xFF  # the last record's payload is damaged: its write did not complete
    seg.write_bytes(bytes(data))
    w = WAL(tmp_path)
    assert w.recovery is not None and "checksum" in w.recovery.reason
    assert w.replay() == expected_replay(EVENTS[:-1])
    assert seg.stat().st_size < size


def test_corrupt_middle_record_is_an_error(tmp_path: Path) -> None:
    with WAL(tmp_path) as w:
        write_events(w, EVENTS)
    seg = segment_files(tmp_path)[0]
    original = seg.read_bytes()
    data = bytearray(original)
    at = original.index(b"prevote h1 v1")
    data[at] ^= 0x01
    seg.write_bytes(bytes(data))
    with pytest.raises(
        WALCorruption, match=r"wal-00000000\.log is corrupt at offset \d+: record checksum"
    ):
        WAL(tmp_path)
    assert seg.read_bytes() == bytes(data)  # nothing truncated
    # A damaged length in the middle is corruption too.
    data = bytearray(original)
    first_len = 4 + 4 + 1 + 8  # header + END_HEIGHT(0) payload
    data[first_len + 4 : first_len + 8] = (MAX_PAYLOAD_SIZE + 1).to_bytes(4, "big")
    seg.write_bytes(bytes(data))
    with pytest.raises(WALCorruption, match="bad record header"):
        WAL(tmp_path)


def test_damage_in_an_older_segment_is_an_error(tmp_path: Path) -> None:
    with WAL(tmp_path, segment_size=100) as w:
        write_events(w, EVENTS)
    first = segment_files(tmp_path)[0]
    with open(first, "r+b") as f:
        f.truncate(first.stat().st_size - 1)  # torn, but not at the end of the log
    with pytest.raises(WALCorruption, match="incomplete record body"):
        WAL(tmp_path, segment_size=100)


def test_missing_segment_is_an_error(tmp_path: Path) -> None:
    with WAL(tmp_path, segment_size=100) as w:
        write_events(w, EVENTS)
    segs = segment_files(tmp_path)
    assert len(segs) >= 3
    segs[1].unlink()
    with pytest.raises(WALCorruption, match="missing"):
        WAL(tmp_path, segment_size=100)


def test_write_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = WAL(tmp_path)
    with pytest.raises(WALError, match="exceeds"):
        w.write(b"x" * (MAX_PAYLOAD_SIZE + 1))
    w.write(b"x" * MAX_PAYLOAD_SIZE)

    def failing_fsync(fd: int) -> None:
        raise OSError("EIO")

    monkeypatch.setattr(wal_module.os, "fsync", failing_fsync)
    with pytest.raises(WALError, match="EIO"):
        w.write_sync(b"own vote")
    monkeypatch.undo()
    with pytest.raises(WALError, match="stopped"):
        w.write(b"anything")  # never log around a failed write
    w.close()
    with pytest.raises(WALError, match="closed"):
        w.write(b"late")
    with pytest.raises(ValueError):
        WAL(tmp_path / "other").write_end_height(-1)
