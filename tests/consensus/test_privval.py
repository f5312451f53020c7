"""FilePrivValidator: no regression, no conflicting signature, even across crashes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cybermiles.consensus import privval
from cybermiles.consensus.privval import (
    STEP_PRECOMMIT,
    DoubleSignError,
    FilePrivValidator,
    LastSignState,
    PrivValidatorError,
)
from cybermiles.consensus.signing import (
    proposal_sign_bytes,
    verify_proposal,
    verify_vote,
    vote_sign_bytes,
)
from cybermiles.consensus.types import Proposal, Vote, VoteType
from cybermiles.crypto import ed25519

CHAIN = 1234
KEY = ed25519.private_key_from_seed(b"\x07" * 32)
PUB = ed25519.public_key_bytes(KEY)
ME = b"\x0e" * 20
A, B = b"\xaa" * 32, b"\xbb" * 32
PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT


def vote(type: VoteType, height: int, round: int, block: bytes | None) -> Vote:
    return Vote(type, height, round, block, ME)


def proposal(height: int, round: int, block: bytes, pol_round: int = -1) -> Proposal:
    return Proposal(height, round, block, pol_round, ME)


def test_signs_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "priv_validator_state.json"
    pv = FilePrivValidator(KEY, path)
    assert path.exists() and pv.last_sign_state == LastSignState()
    p = pv.sign_proposal(CHAIN, proposal(1, 0, A))
    assert verify_proposal(PUB, CHAIN, p)
    v = pv.sign_vote(CHAIN, vote(PV, 1, 0, A))
    assert verify_vote(PUB, CHAIN, v)
    c = pv.sign_vote(CHAIN, vote(PC, 1, 0, A))
    state = FilePrivValidator(KEY, path).last_sign_state
    assert (state.height, state.round, state.step, state.block_hash) == (1, 0, STEP_PRECOMMIT, A)
    assert state.signature == c.signature
    assert state.sign_bytes == vote_sign_bytes(CHAIN, vote(PC, 1, 0, A))


def test_refuses_regression(tmp_path: Path) -> None:
    pv = FilePrivValidator(KEY, tmp_path / "s.json")
    pv.sign_vote(CHAIN, vote(PC, 5, 2, A))
    for older in (vote(PV, 5, 2, A), vote(PC, 5, 1, A), vote(PC, 4, 9, A)):
        with pytest.raises(DoubleSignError, match="already signed"):
            pv.sign_vote(CHAIN, older)
    with pytest.raises(DoubleSignError):
        pv.sign_proposal(CHAIN, proposal(5, 2, A))  # propose < precommit
    pv.sign_proposal(CHAIN, proposal(5, 3, B))  # a later round is fine
    pv.sign_vote(CHAIN, vote(PV, 6, 0, None))  # a later height too


def test_refuses_conflict_and_resigns_identical(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    pv = FilePrivValidator(KEY, path)
    first = pv.sign_vote(CHAIN, vote(PV, 3, 0, A))
    assert pv.sign_vote(CHAIN, vote(PV, 3, 0, A)) == first
    for conflicting in (vote(PV, 3, 0, B), vote(PV, 3, 0, None)):
        with pytest.raises(DoubleSignError, match="conflicts"):
            pv.sign_vote(CHAIN, conflicting)
    with pytest.raises(DoubleSignError, match="conflicts"):
        pv.sign_vote(19, vote(PV, 3, 0, A))  # another chain's sign bytes
    # After a restart, the same answers.
    again = FilePrivValidator(KEY, path)
    assert again.sign_vote(CHAIN, vote(PV, 3, 0, A)) == first
    with pytest.raises(DoubleSignError):
        again.sign_vote(CHAIN, vote(PV, 3, 0, B))
    prop = again.sign_proposal(CHAIN, proposal(3, 1, A))
    assert again.sign_proposal(CHAIN, proposal(3, 1, A)) == prop
    with pytest.raises(DoubleSignError):
        again.sign_proposal(CHAIN, proposal(3, 1, A, pol_round=0))


def test_unreadable_state_is_fatal(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    for content in (b"", b"{not json", b'{"height": 1}', b'{"height": "1", "round": 0}'):
        path.write_bytes(content)
        with pytest.raises(PrivValidatorError):
            FilePrivValidator(KEY, path)
    # A signed step without signature is inconsistent.
    bad = LastSignState(1, 0, STEP_PRECOMMIT, A, b"", b"")
    path.write_bytes(bad.to_json())
    with pytest.raises(PrivValidatorError, match="no sign bytes"):
        FilePrivValidator(KEY, path)


def test_leftover_temp_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    pv = FilePrivValidator(KEY, path)
    v = pv.sign_vote(CHAIN, vote(PV, 1, 0, A))
    # A crash mid-write of the next state leaves a half-written temp file.
    (tmp_path / "s.json.tmp").write_bytes(b'{"height": 1, "rou')
    again = FilePrivValidator(KEY, path)
    assert again.sign_vote(CHAIN, vote(PV, 1, 0, A)) == v
    with pytest.raises(DoubleSignError):
        again.sign_vote(CHAIN, vote(PV, 1, 0, B))


def test_failed_save_releases_nothing_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pv = FilePrivValidator(KEY, tmp_path / "s.json")

    def failing_fsync(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(privval.os, "fsync", failing_fsync)
    with pytest.raises(PrivValidatorError, match="disk on fire"):
        pv.sign_vote(CHAIN, vote(PV, 1, 0, A))
    monkeypatch.undo()
    with pytest.raises(PrivValidatorError, match="stopped"):
        pv.sign_vote(CHAIN, vote(PV, 1, 0, B))


# --- crash at every file operation ---------------------------------------------------------


class Crash(BaseException):
    """The process dies (BaseException: nothing in the code under test may swallow it)."""


def _no_fsync(fd: int) -> None:
    pass


class CrashingOS:
    """``os`` for privval, dying at the ``n``-th durable file operation, before or after it."""

    COUNTED = frozenset({"open", "write", "fsync", "replace"})

    def __init__(self, n: int, after: bool) -> None:
        self.n, self.after, self.count, self.crashed = n, after, 0, False

    def __getattr__(self, name: str) -> object:
        real = getattr(os, name)
        if name not in self.COUNTED:
            return real
        if name == "fsync":
            # A process crash, not a power loss, is simulated: skip the slow real fsync.
            real = _no_fsync

        def op(*args: object) -> object:
            if self.crashed:
                raise Crash
            self.count += 1
            if self.count == self.n and not self.after:
                self.crashed = True
                raise Crash
            result = real(*args)
            if self.count == self.n:
                self.crashed = True
                raise Crash
            return result

        return op


# Requests as a confused or restarting node might issue them: conflicting pairs at one HRS.
REQUESTS: list[Vote | Proposal] = [
    proposal(1, 0, A),
    proposal(1, 0, B),
    vote(PV, 1, 0, A),
    vote(PV, 1, 0, None),
    vote(PC, 1, 0, A),
    vote(PC, 1, 0, B),
    vote(PV, 1, 1, B),
    vote(PV, 1, 1, A),
    vote(PC, 2, 0, None),
    vote(PC, 2, 0, A),
]


def _hrs_and_bytes(msg: Vote | Proposal) -> tuple[tuple[int, int, int], bytes]:
    if isinstance(msg, Proposal):
        return (msg.height, msg.round, 0), proposal_sign_bytes(CHAIN, msg)
    return (msg.height, msg.round, int(msg.type)), vote_sign_bytes(CHAIN, msg)


def _sign(pv: FilePrivValidator, msg: Vote | Proposal) -> bytes:
    if isinstance(msg, Proposal):
        return pv.sign_proposal(CHAIN, msg).signature
    return pv.sign_vote(CHAIN, msg).signature


def _run(tmp: Path, crashing: CrashingOS, monkeypatch: pytest.MonkeyPatch) -> dict:
    path = tmp / "state.json"
    pv = FilePrivValidator(KEY, path)
    released: dict[tuple[int, int, int], set[bytes]] = {}
    monkeypatch.setattr(privval, "os", crashing)
    queue = list(REQUESTS)
    while queue:
        msg = queue.pop(0)
        try:
            signature = _sign(pv, msg)
        except DoubleSignError:
            continue
        except Crash:
            monkeypatch.setattr(privval, "os", os)  # restart on a healthy disk
            pv = FilePrivValidator(KEY, path)
            # The restarted node first tries the *conflicting* twin, then the message again.
            twins = [m for m in REQUESTS if _hrs_and_bytes(m)[0] == _hrs_and_bytes(msg)[0]]
            queue[:0] = [t for t in twins if t != msg] + [msg]
            continue
        hrs, sign_bytes = _hrs_and_bytes(msg)
        assert ed25519.verify(PUB, sign_bytes, signature)
        released.setdefault(hrs, set()).add(sign_bytes)
    monkeypatch.setattr(privval, "os", os)
    return released


def test_crash_at_every_file_operation_never_double_signs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Count the durable operations of a crash-free run, then crash before and after each.
    probe = CrashingOS(n=10**9, after=False)
    (tmp_path / "probe").mkdir()
    clean = _run(tmp_path / "probe", probe, monkeypatch)
    assert probe.count > 20 and all(len(s) == 1 for s in clean.values())
    crashes = 0
    for n in range(1, probe.count + 1):
        for after in (False, True):
            case = tmp_path / f"crash-{n}-{after}"
            case.mkdir()
            crashing = CrashingOS(n, after)
            released = _run(case, crashing, monkeypatch)
            crashes += crashing.crashed
            for hrs, signed in released.items():
                assert len(signed) == 1, f"double sign at {hrs} (crash at op {n}, after={after})"
            # Progress is never lost beyond the one interrupted request.
            assert set(released) == set(clean)
    assert crashes == 2 * probe.count
