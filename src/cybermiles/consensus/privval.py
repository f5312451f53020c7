"""A validator's signer with double-sign protection that survives restarts.

The last thing the validator signed, its *last sign state* (height, round, step, block hash,
sign bytes, signature), is kept in a JSON file. Before a signature leaves
:class:`FilePrivValidator`, the new state is written to a temporary file, fsynced, renamed over
the old one and the directory fsynced, so a crash at any moment leaves either the old state
(and the signature was never released) or the new one (and re-signing returns the stored
signature). A request is refused if it would go back in (height, round, step) order, or if it
is a different message at the same (height, round, step): that is exactly a double sign.

Steps are ordered propose < prevote < precommit; on disk they are stored as CometBFT does,
1 / 2 / 3, with 0 meaning "nothing signed yet".

Never run two processes on one state file: nothing here locks it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cybermiles.consensus.signing import proposal_sign_bytes, vote_sign_bytes
from cybermiles.consensus.types import Proposal, Step, Vote, VoteType
from cybermiles.crypto import ed25519

__all__ = [
    "STEP_NONE",
    "STEP_PRECOMMIT",
    "STEP_PREVOTE",
    "STEP_PROPOSE",
    "DoubleSignError",
    "FilePrivValidator",
    "LastSignState",
    "PrivValidatorError",
]

STEP_NONE = 0
STEP_PROPOSE = 1
STEP_PREVOTE = 2
STEP_PRECOMMIT = 3

_STEP_OF_VOTE = {VoteType.PREVOTE: STEP_PREVOTE, VoteType.PRECOMMIT: STEP_PRECOMMIT}
_STEP_NAMES = {
    STEP_NONE: "none",
    STEP_PROPOSE: "propose",
    STEP_PREVOTE: "prevote",
    STEP_PRECOMMIT: "precommit",
}


class PrivValidatorError(Exception):
    """The signer cannot work (unreadable or inconsistent state file, failed write)."""


class DoubleSignError(PrivValidatorError):
    """A signature was refused: it would regress or conflict with what was already signed."""


def step_of(message: Vote | Proposal) -> int:
    """The signing step of a vote or proposal (``STEP_PROPOSE``/``PREVOTE``/``PRECOMMIT``)."""
    if isinstance(message, Proposal):
        return STEP_PROPOSE
    return _STEP_OF_VOTE[VoteType(message.type)]


def consensus_step(step: int) -> Step:
    """The :class:`~cybermiles.consensus.types.Step` of a stored step number (1..3)."""
    return Step(step - 1)


@dataclass(frozen=True, slots=True)
class LastSignState:
    """What the validator signed last. ``step`` is ``STEP_NONE`` before the first signature."""

    height: int = 0
    round: int = 0
    step: int = STEP_NONE
    block_hash: bytes | None = None
    sign_bytes: bytes = b""
    signature: bytes = b""

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "height": self.height,
                "round": self.round,
                "step": self.step,
                "block_hash": None if self.block_hash is None else self.block_hash.hex(),
                "sign_bytes": self.sign_bytes.hex(),
                "signature": self.signature.hex(),
            },
            indent=2,
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LastSignState:
        """Parse and check a stored state.

        Raises
        ------
        PrivValidatorError
            Not JSON, missing or mistyped fields, or an inconsistent state (a signed step
            without sign bytes and signature).
        """
        try:
            obj = json.loads(data)
            block_hash = obj["block_hash"]
            state = cls(
                height=_int(obj["height"]),
                round=_int(obj["round"]),
                step=_int(obj["step"]),
                block_hash=None if block_hash is None else bytes.fromhex(block_hash),
                sign_bytes=bytes.fromhex(obj["sign_bytes"]),
                signature=bytes.fromhex(obj["signature"]),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise PrivValidatorError(f"unreadable last sign state: {e}") from e
        if state.height < 0 or state.round < 0 or state.step not in _STEP_NAMES:
            raise PrivValidatorError(f"invalid last sign state: {state}")
        if state.step != STEP_NONE and not (state.sign_bytes and state.signature):
            raise PrivValidatorError("last sign state has a step but no sign bytes/signature")
        return state


def _int(value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` durably: temp file, fsync, rename, fsync the directory.

    After a crash ``path`` holds either the old or the new content, never a mix.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class FilePrivValidator:
    """An Ed25519 consensus key plus its on-disk last sign state.

    Parameters
    ----------
    key
        The validator's consensus key.
    path
        The state file; created (empty state) if missing.

    Raises
    ------
    PrivValidatorError
        If an existing state file cannot be read (never silently reset: that could sign twice).
    """

    def __init__(self, key: Ed25519PrivateKey, path: str | os.PathLike[str]) -> None:
        self._key = key
        self._path = Path(path)
        self.pub_key = ed25519.public_key_bytes(key)
        self._failed: str | None = None
        if self._path.exists():
            try:
                data = self._path.read_bytes()
            except OSError as e:
                raise PrivValidatorError(f"cannot read {self._path}: {e}") from e
            self._state = LastSignState.from_json(data)
        else:
            self._state = LastSignState()
            self._path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self._path, self._state.to_json())

    @property
    def path(self) -> Path:
        return self._path

    @property
    def last_sign_state(self) -> LastSignState:
        return self._state

    def sign_vote(self, chain_id: int, vote: Vote) -> Vote:
        """``vote`` signed, unless that could be a double sign.

        Returns the stored signature when asked to sign the identical vote again (e.g. after
        a restart).

        Raises
        ------
        DoubleSignError
            Lower (height, round, step) than the last signature, or a different vote at the
            same (height, round, step).
        PrivValidatorError
            The state could not be saved (no signature is released; the signer then refuses
            everything until it is re-created from the file).
        """
        sign_bytes = vote_sign_bytes(chain_id, vote)
        signature = self._sign(vote.height, vote.round, step_of(vote), vote.block_hash, sign_bytes)
        return replace(vote, signature=signature)

    def sign_proposal(self, chain_id: int, proposal: Proposal) -> Proposal:
        """``proposal`` signed, unless that could be a double sign (as :meth:`sign_vote`).

        Raises
        ------
        DoubleSignError
            Lower (height, round, step) than the last signature, or a different proposal at
            the same (height, round).
        PrivValidatorError
            The state could not be saved (no signature is released).
        """
        sign_bytes = proposal_sign_bytes(chain_id, proposal)
        signature = self._sign(
            proposal.height, proposal.round, STEP_PROPOSE, proposal.block_hash, sign_bytes
        )
        return replace(proposal, signature=signature)

    # --- the rule -------------------------------------------------------------------------

    def _check_hrs(self, height: int, round: int, step: int, sign_bytes: bytes) -> bytes | None:
        """The stored signature if this is the identical message at the last HRS, None if the
        HRS is ahead of the last one; raises if it regresses or conflicts."""
        last = self._state
        where = f"{height}/{round}/{_STEP_NAMES[step]}"
        signed = f"{last.height}/{last.round}/{_STEP_NAMES[last.step]}"
        if (height, round, step) < (last.height, last.round, last.step):
            raise DoubleSignError(f"refusing to sign {where}: already signed at {signed}")
        if (height, round, step) == (last.height, last.round, last.step):
            if last.step != STEP_NONE and sign_bytes == last.sign_bytes:
                return last.signature
            raise DoubleSignError(
                f"refusing to sign {where}: conflicts with what was signed at {signed}"
            )
        return None

    def _sign(
        self, height: int, round: int, step: int, block_hash: bytes | None, sign_bytes: bytes
    ) -> bytes:
        if self._failed is not None:
            raise PrivValidatorError(f"signer stopped after a failed save: {self._failed}")
        stored = self._check_hrs(height, round, step, sign_bytes)
        if stored is not None:
            return stored
        signature = ed25519.sign(self._key, sign_bytes)
        state = LastSignState(height, round, step, block_hash, sign_bytes, signature)
        try:
            write_atomically(self._path, state.to_json())
        except OSError as e:
            # The file may now hold the old or the new state: stop until a restart re-reads it.
            self._failed = str(e)
            raise PrivValidatorError(f"cannot save last sign state to {self._path}: {e}") from e
        self._state = state  # only now is the signature released
        return signature
