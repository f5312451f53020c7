"""Proposal records as RLP: the common fields, a kind-specific detail, the final tally.

A proposal is stored as the RLP list ``[id, kind, proposer, deposit, start_height,
expire_height, status, end_height, [yes, no, abstain], detail]`` where ``detail`` is the RLP
list of the kind's fields:

* transfer (0): ``[to, amount, reason]``;
* change param (1): ``[name, value, height]``;
* upgrade (2): ``[name, version, height]``;
* text (3): ``[title, text]``.

``end_height`` is the block whose end decided the proposal (0 while voting); the tally is the
one that decided it (zeros while voting: the live tally depends on the current stake).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import rlp
from rlp.sedes import Binary, List, big_endian_int, binary

from cybermiles.modules.framework.codec import decode

ADDRESS = Binary.fixed_length(20)


class Kind(IntEnum):
    TRANSFER = 0
    CHANGE_PARAM = 1
    UPGRADE = 2
    TEXT = 3


class Status(IntEnum):
    VOTING = 0
    PASSED = 1
    REJECTED = 2
    EXPIRED = 3
    FAILED = 4  # passed but could not be carried out


class Answer(IntEnum):
    YES = 0
    NO = 1
    ABSTAIN = 2


@dataclass(frozen=True, slots=True)
class TransferFund:
    """Pay ``amount`` wei from the community pool to ``to``."""

    to: bytes
    amount: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChangeParam:
    """Set parameter ``name`` to ``value`` at the end of block ``height`` (or when passed)."""

    name: str
    value: int
    height: int


@dataclass(frozen=True, slots=True)
class Upgrade:
    """Nodes not running ``version`` stop before block ``height``."""

    name: str
    version: str
    height: int


@dataclass(frozen=True, slots=True)
class Text:
    title: str
    text: str


Detail = TransferFund | ChangeParam | Upgrade | Text

_KIND_OF: dict[type, Kind] = {
    TransferFund: Kind.TRANSFER,
    ChangeParam: Kind.CHANGE_PARAM,
    Upgrade: Kind.UPGRADE,
    Text: Kind.TEXT,
}

_DETAIL_SEDES: dict[Kind, List] = {
    Kind.TRANSFER: List([ADDRESS, big_endian_int, binary]),
    Kind.CHANGE_PARAM: List([binary, big_endian_int, big_endian_int]),
    Kind.UPGRADE: List([binary, binary, big_endian_int]),
    Kind.TEXT: List([binary, binary]),
}


@dataclass(frozen=True, slots=True)
class Tally:
    """Voting power behind each answer."""

    yes: int = 0
    no: int = 0
    abstain: int = 0

    @property
    def cast(self) -> int:
        return self.yes + self.no + self.abstain


@dataclass(frozen=True, slots=True)
class Proposal:
    id: int
    proposer: bytes
    deposit: int
    start_height: int
    expire_height: int
    detail: Detail
    status: Status = Status.VOTING
    end_height: int = 0
    tally: Tally = field(default_factory=Tally)

    @property
    def kind(self) -> Kind:
        return kind_of(self.detail)


def kind_of(detail: Detail) -> Kind:
    return _KIND_OF[type(detail)]


def _detail_fields(detail: Detail) -> list[object]:
    match detail:
        case TransferFund(to, amount, reason):
            return [to, amount, reason.encode()]
        case ChangeParam(name, value, height):
            return [name.encode(), value, height]
        case Upgrade(name, version, height):
            return [name.encode(), version.encode(), height]
        case Text(title, text):
            return [title.encode(), text.encode()]
    raise TypeError(f"not a proposal detail: {detail!r}")


def _detail_from(kind: Kind, values: list[object]) -> Detail:
    if kind is Kind.TRANSFER:
        to, amount, reason = values
        return TransferFund(bytes(to), amount, bytes(reason).decode())  # type: ignore[arg-type]
    if kind is Kind.CHANGE_PARAM:
        name, value, height = values
        return ChangeParam(bytes(name).decode(), value, height)  # type: ignore[arg-type]
    if kind is Kind.UPGRADE:
        name, version, height = values
        return Upgrade(bytes(name).decode(), bytes(version).decode(), height)  # type: ignore[arg-type]
    title, text = values
    return Text(bytes(title).decode(), bytes(text).decode())  # type: ignore[arg-type]


_PROPOSAL = List(
    [
        big_endian_int,  # id
        big_endian_int,  # kind
        ADDRESS,  # proposer
        big_endian_int,  # deposit
        big_endian_int,  # start_height
        big_endian_int,  # expire_height
        big_endian_int,  # status
        big_endian_int,  # end_height
        List([big_endian_int, big_endian_int, big_endian_int]),  # tally
        binary,  # detail, RLP of the kind's fields
    ]
)


def encode_proposal(proposal: Proposal) -> bytes:
    kind = proposal.kind
    detail = rlp.encode(_detail_fields(proposal.detail), sedes=_DETAIL_SEDES[kind])
    tally = proposal.tally
    return rlp.encode(
        [
            proposal.id,
            int(kind),
            proposal.proposer,
            proposal.deposit,
            proposal.start_height,
            proposal.expire_height,
            int(proposal.status),
            proposal.end_height,
            [tally.yes, tally.no, tally.abstain],
            detail,
        ],
        sedes=_PROPOSAL,
    )


def decode_proposal(raw: bytes) -> Proposal:
    (id_, kind, proposer, deposit, start, expire, status, end, tally, detail) = decode(
        raw, _PROPOSAL
    )
    kind = Kind(kind)
    return Proposal(
        id=id_,
        proposer=bytes(proposer),
        deposit=deposit,
        start_height=start,
        expire_height=expire,
        detail=_detail_from(kind, list(decode(detail, _DETAIL_SEDES[kind]))),
        status=Status(status),
        end_height=end,
        tally=Tally(*tally),
    )
