"""One validator's Tendermint consensus (Algorithm 1 of Buchman, Kwon, Milosevic 2018), pure.

``ConsensusState.handle(event) -> list[Action]`` is the whole interface: events are the values of
``events`` (start a height, a proposal, a vote, a timeout, a value to propose) and actions are the
values of ``actions`` (broadcast, schedule a timeout, ask for a value, decide, evidence). There is
no clock, thread, socket, randomness or key inside; the reactor does all of that, so the same
events always give the same actions (the WAL replays them, the simulator drives them).

Mapping to the paper (line numbers of Algorithm 1)::

    StartRound (11-21)           _start_round
    22-27  proposal, vr = -1     _rule_prevote_on_proposal
    28-33  proposal + POL(vr)    _rule_prevote_on_proposal
    34-35  2f+1 prevotes (any)   _rule_schedule_prevote_timeout   (first time per round)
    36-43  proposal + polka      _rule_lock                       (first time per round)
    44-46  2f+1 nil prevotes     _rule_precommit_nil
    47-48  2f+1 precommits (any) _rule_schedule_precommit_timeout (first time per round)
    49-54  proposal + commit     _rule_decide                     (any round)
    55-56  f+1 from round > r    _rule_round_skip
    57-67  OnTimeout*            _on_timeout

"2f+1" means more than 2/3 of the height's total voting power and "f+1" more than 1/3, with
integer arithmetic (``3 * power > 2 * total``). All rules are re-evaluated after every input
until none fires, in the fixed order above (decide first), so the result does not depend on
which rule "noticed" a change.

Deliberate choices where the paper is silent or the node needs more:

* **Signing** is the reactor's job: own messages are emitted unsigned (see ``actions``) and counted
  by the state machine itself at once (self-delivery).
* **Values** are block hashes. ``getValue()`` is asynchronous: the proposer emits
  ``RequestValue(h, r)`` and proposes when ``ValueEvent(h, r, hash)`` arrives (if it is still in
  the propose step of that round). A proposer with a ``validValue`` re-proposes it at once.
* **The propose timeout is scheduled for the proposer too** (the paper schedules it only for the
  others): if the value never comes, the proposer prevotes nil like everyone else. Harmless: once
  it proposed it is past the propose step, and a stale timeout does nothing.
* **After deciding** the state machine stops at that height: it emits ``Decide`` once and no rule
  fires any more (the height's further votes are still logged, so late double votes still yield
  evidence). The reactor applies the block, waits ``TimeoutConfig.commit_ms`` and then sends
  ``StartHeight(h + 1)``: the next height's validator set may depend on the block.
* **Future heights**: messages for height ``h + 1`` are buffered (at most ``max_buffered``,
  later ones are dropped) and replayed on ``StartHeight(h + 1)``. Higher heights are ignored (the
  reactor's gossip or block sync resends them), and so are past heights.
* **Message log**: as in the paper, a vote counts toward the value it names. A validator's power
  counts at most once per value, and once toward "any value" (2f+1 ⟨PREVOTE, ∗⟩, round skip).
  A repeated vote is ignored. A vote that differs from the validator's first vote of that
  (round, type) yields ``DuplicateVoteEvidence(first, new)`` once, and then counts toward its own
  value only. At most ``MAX_VALUES_PER_VALIDATOR`` values per validator, round and type are kept.
  Counting the conflicting vote is safe (two 2f+1 quorums still share an honest validator) and
  needed for liveness: if honest nodes decided with a double-voter's precommit, a node that saw
  its other precommit first must still be able to decide from the same commit.
* **Ignored messages**: votes from non-validators, proposals not from the round's proposer, and
  proposals whose ``pol_round`` is outside ``[-1, round)``. A round keeps up to
  ``MAX_PROPOSALS_PER_ROUND`` distinct proposals: an equivocating proposer may send several, and
  rules 36 and 49 look for the one that matches the polka or the commit.
* **Not bounded**: the number of rounds a height's log holds (a validator may vote in any round).
* **Observer**: with ``address=None`` (or an address with no power at this height) the node runs
  every rule and decides, but never proposes or votes.
"""

from __future__ import annotations

from collections.abc import Callable

from .actions import (
    Action,
    BroadcastProposal,
    BroadcastVote,
    Decide,
    DuplicateVoteEvidence,
    RequestValue,
    ScheduleTimeout,
)
from .events import Event, ProposalEvent, StartHeight, TimeoutEvent, ValueEvent, VoteEvent
from .timeouts import TimeoutConfig
from .types import Proposal, Step, Validators, Vote, VoteType

MAX_PROPOSALS_PER_ROUND = 4
MAX_VALUES_PER_VALIDATOR = 4
DEFAULT_MAX_BUFFERED = 1024


class _VoteSet:
    """The votes of one type in one round, tallied by power.

    ``first`` is each validator's first vote. A validator's power counts once in ``power_any``
    and once in ``power_for[value]`` for each distinct value it voted for (at most
    ``MAX_VALUES_PER_VALIDATOR`` of them).
    """

    __slots__ = ("by_value", "first", "power_any", "power_for")

    def __init__(self) -> None:
        self.first: dict[bytes, Vote] = {}
        self.by_value: dict[bytes | None, dict[bytes, Vote]] = {}
        self.power_for: dict[bytes | None, int] = {}
        self.power_any = 0

    def has(self, vote: Vote) -> bool:
        return vote.validator in self.by_value.get(vote.block_hash, {})

    def add(self, vote: Vote, power: int) -> None:
        if vote.validator not in self.first:
            self.first[vote.validator] = vote
            self.power_any += power
        self.by_value.setdefault(vote.block_hash, {})[vote.validator] = vote
        self.power_for[vote.block_hash] = self.power_for.get(vote.block_hash, 0) + power


class _Round:
    """Everything received for one round of the current height."""

    __slots__ = ("precommits", "prevotes", "proposals", "sender_power", "senders")

    def __init__(self) -> None:
        # block hash -> (proposal, valid); insertion order = arrival order
        self.proposals: dict[bytes, tuple[Proposal, bool]] = {}
        self.prevotes = _VoteSet()
        self.precommits = _VoteSet()
        self.senders: set[bytes] = set()
        self.sender_power = 0


class ConsensusState:
    """Algorithm 1 for one chain, as seen by the validator ``address`` (``None``: observer).

    Parameters
    ----------
    address:
        This node's validator address, or ``None`` for a non-voting observer.
    height:
        The first height; nothing happens until ``StartHeight(height)``.
    validators_for:
        The validator set of a height (called once per height, at ``StartHeight``).
    timeouts:
        Timeout durations (``timeouts.DEFAULT`` in production, ``timeouts.FAST`` in tests).
    max_buffered:
        How many messages for the next height are kept until it starts.
    """

    def __init__(
        self,
        address: bytes | None,
        height: int,
        validators_for: Callable[[int], Validators],
        timeouts: TimeoutConfig,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> None:
        self._address = address
        self._validators_for = validators_for
        self._timeouts = timeouts
        self._max_buffered = max_buffered
        self._out: list[Action] = []
        self._buffer: list[Event] = []
        self._reset_height(height)

    # ------------------------------------------------------------------ read-only view

    @property
    def height(self) -> int:
        return self._height

    @property
    def round(self) -> int:
        return self._round

    @property
    def step(self) -> Step:
        return self._step

    @property
    def started(self) -> bool:
        return self._started

    @property
    def locked_value(self) -> bytes | None:
        return self._locked_value

    @property
    def locked_round(self) -> int:
        return self._locked_round

    @property
    def valid_value(self) -> bytes | None:
        return self._valid_value

    @property
    def valid_round(self) -> int:
        return self._valid_round

    @property
    def decision(self) -> Decide | None:
        """The decision of the current height, once made."""
        return self._decision

    @property
    def validators(self) -> Validators:
        return self._vals

    # ------------------------------------------------------------------ entry point

    def handle(self, event: Event) -> list[Action]:
        """Consume one event and return the actions it causes, in order."""
        if isinstance(event, VoteEvent):
            self._on_vote(event)
        elif isinstance(event, ProposalEvent):
            self._on_proposal(event)
        elif isinstance(event, TimeoutEvent):
            self._on_timeout(event)
        elif isinstance(event, ValueEvent):
            self._on_value(event)
        elif isinstance(event, StartHeight):
            self._on_start_height(event)
        else:
            raise TypeError(f"not a consensus event: {event!r}")
        self._run_rules()
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------------ height lifecycle

    def _reset_height(self, height: int) -> None:
        """Line 53: fresh lock/valid values and message log for ``height``."""
        self._height = height
        self._vals = self._validators_for(height)
        self._total = self._vals.total_power
        self._round = 0
        self._step = Step.PROPOSE
        self._started = False
        self._locked_value: bytes | None = None
        self._locked_round = -1
        self._valid_value: bytes | None = None
        self._valid_round = -1
        self._decision: Decide | None = None
        self._rounds: dict[int, _Round] = {}
        self._fired: set[tuple[int, int]] = set()  # (rule line, round) for "first time" guards
        self._commit_candidates: set[tuple[int, bytes]] = set()  # (round, value): 2f+1 precommits
        self._skip_rounds: set[int] = set()  # rounds with f+1 senders
        self._evidence_seen: set[tuple[bytes, int, VoteType, bytes | None]] = set()
        self._awaiting_value = False
        self._voting = self._address is not None and self._vals.power_of(self._address) > 0

    def _on_start_height(self, event: StartHeight) -> None:
        if event.height < self._height or (event.height == self._height and self._started):
            return
        if event.height > self._height:
            buffered = self._buffer if event.height == self._height + 1 else []
            self._buffer = []
            self._reset_height(event.height)
            for message in buffered:  # handled before the round starts: just logged
                if isinstance(message, VoteEvent):
                    self._on_vote(message)
                elif isinstance(message, ProposalEvent):
                    self._on_proposal(message)
        self._started = True
        self._start_round(0)

    def _accepts(self, height: int, event: Event) -> bool:
        """True if a message for ``height`` belongs to the current height (decided or not: after
        the decision it is still logged, so late double votes still yield evidence)."""
        if height == self._height:
            return True
        if height == self._height + 1 and len(self._buffer) < self._max_buffered:
            self._buffer.append(event)
        return False

    # ------------------------------------------------------------------ message log

    def _round_log(self, round: int) -> _Round:
        log = self._rounds.get(round)
        if log is None:
            log = self._rounds[round] = _Round()
        return log

    def _note_sender(self, round: int, log: _Round, sender: bytes, power: int) -> None:
        if sender in log.senders:
            return
        log.senders.add(sender)
        log.sender_power += power
        if 3 * log.sender_power > self._total:
            self._skip_rounds.add(round)

    def _on_proposal(self, event: ProposalEvent) -> None:
        p = event.proposal
        if not self._accepts(p.height, event):
            return
        if p.round < 0 or not -1 <= p.pol_round < p.round:
            return
        if p.proposer != self._vals.proposer(p.round):
            return
        log = self._round_log(p.round)
        if p.block_hash in log.proposals or len(log.proposals) >= MAX_PROPOSALS_PER_ROUND:
            return
        log.proposals[p.block_hash] = (p, event.valid)
        self._note_sender(p.round, log, p.proposer, self._vals.power_of(p.proposer))

    def _on_vote(self, event: VoteEvent) -> None:
        v = event.vote
        if not self._accepts(v.height, event):
            return
        power = self._vals.power_of(v.validator)
        if power <= 0 or v.round < 0:
            return
        log = self._round_log(v.round)
        votes = log.prevotes if v.type == VoteType.PREVOTE else log.precommits
        if votes.has(v):
            return
        first = votes.first.get(v.validator)
        if first is not None:
            key = (v.validator, v.round, v.type, v.block_hash)
            if key in self._evidence_seen:
                return
            self._evidence_seen.add(key)
            self._out.append(DuplicateVoteEvidence(first, v))
            if sum(v.validator in vs for vs in votes.by_value.values()) >= MAX_VALUES_PER_VALIDATOR:
                return
        votes.add(v, power)
        self._note_sender(v.round, log, v.validator, power)
        if (
            v.type == VoteType.PRECOMMIT
            and v.block_hash is not None
            and self._two_thirds(votes.power_for[v.block_hash])
        ):
            self._commit_candidates.add((v.round, v.block_hash))

    # ------------------------------------------------------------------ thresholds

    def _two_thirds(self, power: int) -> bool:
        """2f+1: more than 2/3 of the total voting power."""
        return 3 * power > 2 * self._total

    def _polka(self, round: int, value: bytes | None) -> bool:
        """2f+1 prevotes for ``value`` (``None``: nil) in ``round``."""
        log = self._rounds.get(round)
        return log is not None and self._two_thirds(log.prevotes.power_for.get(value, 0))

    # ------------------------------------------------------------------ own messages

    def _broadcast_vote(self, type: VoteType, value: bytes | None) -> None:
        if not self._voting:
            return
        assert self._address is not None
        vote = Vote(type, self._height, self._round, value, self._address)
        self._out.append(BroadcastVote(vote))
        self._on_vote(VoteEvent(vote))

    def _broadcast_proposal(self, value: bytes, pol_round: int) -> None:
        assert self._address is not None
        proposal = Proposal(self._height, self._round, value, pol_round, self._address)
        self._out.append(BroadcastProposal(proposal))
        self._on_proposal(ProposalEvent(proposal, valid=True))

    def _schedule(self, step: Step) -> None:
        duration = self._timeouts.for_step(step, self._round)
        self._out.append(ScheduleTimeout(self._height, self._round, step, duration))

    # ------------------------------------------------------------------ Algorithm 1

    def _start_round(self, round: int) -> None:
        """Lines 11-21."""
        self._round = round
        self._step = Step.PROPOSE
        self._awaiting_value = False
        if self._voting and self._vals.proposer(round) == self._address:
            if self._valid_value is not None:
                self._broadcast_proposal(self._valid_value, self._valid_round)
            else:
                self._awaiting_value = True
                self._out.append(RequestValue(self._height, round))
        self._schedule(Step.PROPOSE)

    def _on_value(self, event: ValueEvent) -> None:
        """Line 17's getValue() returning."""
        if (
            not self._awaiting_value
            or (event.height, event.round) != (self._height, self._round)
            or self._step != Step.PROPOSE
            or self._decision is not None
        ):
            return
        self._awaiting_value = False
        self._broadcast_proposal(event.block_hash, -1)

    def _on_timeout(self, event: TimeoutEvent) -> None:
        """Lines 57-67: a timeout only acts if nothing moved on since it was scheduled."""
        if not self._started or self._decision is not None:
            return
        if (event.height, event.round) != (self._height, self._round):
            return
        if event.step == Step.PROPOSE and self._step == Step.PROPOSE:
            self._broadcast_vote(VoteType.PREVOTE, None)
            self._step = Step.PREVOTE
        elif event.step == Step.PREVOTE and self._step == Step.PREVOTE:
            self._broadcast_vote(VoteType.PRECOMMIT, None)
            self._step = Step.PRECOMMIT
        elif event.step == Step.PRECOMMIT:
            self._start_round(self._round + 1)

    def _run_rules(self) -> None:
        while self._started and self._decision is None and self._apply_one_rule():
            pass

    def _apply_one_rule(self) -> bool:
        return (
            self._rule_decide()
            or self._rule_prevote_on_proposal()
            or self._rule_schedule_prevote_timeout()
            or self._rule_lock()
            or self._rule_precommit_nil()
            or self._rule_schedule_precommit_timeout()
            or self._rule_round_skip()
        )

    def _rule_decide(self) -> bool:
        """Lines 49-54: a proposal and 2f+1 precommits for it in any round decide it."""
        for round, value in sorted(self._commit_candidates):
            found = self._rounds[round].proposals.get(value)
            if found is None or not found[1]:
                continue
            voters = self._rounds[round].precommits.by_value[value]
            precommits = tuple(voters[a] for a in sorted(voters))
            self._decision = Decide(self._height, round, value, found[0], precommits)
            self._out.append(self._decision)
            return True
        return False

    def _rule_prevote_on_proposal(self) -> bool:
        """Lines 22-33: the first usable proposal of the round decides the prevote."""
        if self._step != Step.PROPOSE:
            return False
        log = self._rounds.get(self._round)
        if log is None:
            return False
        for proposal, valid in log.proposals.values():
            v, vr = proposal.block_hash, proposal.pol_round
            if vr == -1:  # line 22
                ok = valid and (self._locked_round == -1 or self._locked_value == v)
            elif self._polka(vr, v):  # line 28 (vr < round by _on_proposal)
                ok = valid and (self._locked_round <= vr or self._locked_value == v)
            else:
                continue  # its proof of lock has not arrived (yet)
            self._broadcast_vote(VoteType.PREVOTE, v if ok else None)
            self._step = Step.PREVOTE
            return True
        return False

    def _rule_schedule_prevote_timeout(self) -> bool:
        """Lines 34-35."""
        if self._step != Step.PREVOTE or (34, self._round) in self._fired:
            return False
        log = self._rounds.get(self._round)
        if log is None or not self._two_thirds(log.prevotes.power_any):
            return False
        self._fired.add((34, self._round))
        self._schedule(Step.PREVOTE)
        return True

    def _rule_lock(self) -> bool:
        """Lines 36-43: the round's proposal got a polka."""
        if self._step < Step.PREVOTE or (36, self._round) in self._fired:
            return False
        log = self._rounds.get(self._round)
        if log is None:
            return False
        for v, (_, valid) in log.proposals.items():
            if not valid or not self._polka(self._round, v):
                continue
            self._fired.add((36, self._round))
            if self._step == Step.PREVOTE:
                self._locked_value = v
                self._locked_round = self._round
                self._broadcast_vote(VoteType.PRECOMMIT, v)
                self._step = Step.PRECOMMIT
            self._valid_value = v
            self._valid_round = self._round
            return True
        return False

    def _rule_precommit_nil(self) -> bool:
        """Lines 44-46."""
        if self._step != Step.PREVOTE or not self._polka(self._round, None):
            return False
        self._broadcast_vote(VoteType.PRECOMMIT, None)
        self._step = Step.PRECOMMIT
        return True

    def _rule_schedule_precommit_timeout(self) -> bool:
        """Lines 47-48."""
        if (47, self._round) in self._fired:
            return False
        log = self._rounds.get(self._round)
        if log is None or not self._two_thirds(log.precommits.power_any):
            return False
        self._fired.add((47, self._round))
        self._schedule(Step.PRECOMMIT)
        return True

    def _rule_round_skip(self) -> bool:
        """Lines 55-56: f+1 of the power sent messages for a higher round: go there."""
        higher = [r for r in self._skip_rounds if r > self._round]
        if not higher:
            return False
        self._start_round(max(higher))
        return True
