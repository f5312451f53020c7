"""Restart semantics of the reactor, without a network (``switch=None``).

One validator of four runs alone, so it stops wherever the others' votes are needed; the test
plays the others by handing it signed votes, and restarts it (new reactor, same WAL, privval
file and app) at chosen points.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from reactor_harness import (
    CHAIN_ID,
    TEST_TIMEOUTS,
    FakeApp,
    eventually,
    genesis_validators,
    run,
    validator_key,
)

from cybermiles.consensus.commit import Commit
from cybermiles.consensus.messages import VoteMessage, decode_wal_record, encode_wal_vote
from cybermiles.consensus.privval import FilePrivValidator
from cybermiles.consensus.proposer import ValidatorSet
from cybermiles.consensus.reactor import ConsensusReactor, ReactorError
from cybermiles.consensus.signing import sign_vote
from cybermiles.consensus.types import Proposal, Step, Vote, VoteType
from cybermiles.consensus.wal import WAL


class CountingPriv(FilePrivValidator):
    """Counts the signatures it is asked for (replay must not ask for any)."""

    requests = 0

    def sign_vote(self, chain_id: int, vote: Vote) -> Vote:
        self.requests += 1
        return super().sign_vote(chain_id, vote)

    def sign_proposal(self, chain_id: int, proposal: Proposal) -> Proposal:
        self.requests += 1
        return super().sign_proposal(chain_id, proposal)


class Solo:
    """Validator ``me`` of a 4-validator set, alone; restartable."""

    def __init__(self, home: Path, genesis: ValidatorSet, app: FakeApp, me: int) -> None:
        self.home, self.genesis, self.app, self.me = home, genesis, app, me
        self.reactor: ConsensusReactor | None = None
        self.wal: WAL | None = None
        self.priv: CountingPriv | None = None
        self.address = genesis.validators[me].address

    async def start(self) -> ConsensusReactor:
        self.wal = WAL(self.home / "wal")
        self.priv = CountingPriv(validator_key(self.me), self.home / "privval.json")
        self.reactor = ConsensusReactor(
            self.app, None, self.priv, self.wal, CHAIN_ID, TEST_TIMEOUTS
        )
        await self.reactor.start()
        return self.reactor

    async def stop(self) -> None:
        assert self.reactor is not None and self.wal is not None
        await self.reactor.stop()
        self.wal.close()

    async def deliver(self, vote: Vote) -> None:
        assert self.reactor is not None
        await self.reactor._enqueue("test-peer", VoteMessage(vote))


def others_vote(
    genesis: ValidatorSet, me: int, type: VoteType, height: int, value: bytes | None
) -> list[Vote]:
    """Signed votes of two other validators (with ``me``, +2/3 of four)."""
    others = [i for i in range(4) if i != me][:2]
    return [
        sign_vote(
            validator_key(i),
            CHAIN_ID,
            Vote(type, height, 0, value, genesis.validators[i].address),
        )
        for i in others
    ]


def proposer_index(genesis: ValidatorSet) -> int:
    proposer = genesis.proposer(0)
    return next(i for i, v in enumerate(genesis.validators) if v.address == proposer)


@pytest.mark.parametrize("pad", [0, 1_200_000], ids=["small-block", "block-over-1MiB"])
def test_proposer_restarted_mid_height_reuses_its_signatures(tmp_path: Path, pad: int) -> None:
    async def main() -> None:
        genesis = genesis_validators(4)
        me = proposer_index(genesis)
        app = FakeApp(genesis, b"solo", pad=pad)
        solo = Solo(tmp_path, genesis, app, me)
        reactor = await solo.start()
        # It proposes and prevotes its block, then waits for the others.
        await eventually(lambda: reactor.state is not None and reactor.state.step == Step.PREVOTE)
        assert solo.priv is not None and solo.priv.requests == 2
        proposed = reactor._store.proposals  # type: ignore[union-attr]
        ((_, value),) = proposed.keys()
        await solo.stop()

        reactor = await solo.start()
        state = reactor.state
        assert state is not None
        assert (state.height, state.round, state.step) == (1, 0, Step.PREVOTE)
        assert solo.priv.requests == 0  # proposal and prevote came back from the WAL
        assert reactor._store.blocks[value]  # type: ignore[union-attr]  # the block too

        for vote in others_vote(genesis, me, VoteType.PREVOTE, 1, value):
            await solo.deliver(vote)
        await eventually(lambda: state.step == Step.PRECOMMIT)
        assert solo.priv.requests == 1  # the precommit is new
        for vote in others_vote(genesis, me, VoteType.PRECOMMIT, 1, value):
            await solo.deliver(vote)
        await eventually(lambda: app.height() == 1)
        assert app.commits[0].block_hash == value
        assert solo.address in app.commits[0].signers()
        await eventually(lambda: reactor.height == 2)
        await solo.stop()

        # After the end-height marker nothing of height 1 is replayed.
        reactor = await solo.start()
        assert reactor.height == 2 and app.height() == 1
        await solo.stop()

    run(main())


def test_follower_restarted_after_its_prevote_keeps_it(tmp_path: Path) -> None:
    async def main() -> None:
        genesis = genesis_validators(4)
        me = (proposer_index(genesis) + 1) % 4
        app = FakeApp(genesis, b"solo")
        solo = Solo(tmp_path, genesis, app, me)
        reactor = await solo.start()
        # No proposal arrives: the propose timeout makes it prevote nil.
        await eventually(lambda: reactor.state is not None and reactor.state.step == Step.PREVOTE)
        assert solo.priv is not None
        last = solo.priv.last_sign_state
        await solo.stop()

        reactor = await solo.start()
        assert reactor.state is not None and reactor.state.step == Step.PREVOTE
        assert solo.priv.requests == 0
        assert solo.priv.last_sign_state == last
        # Nil precommits from the others after a nil polka: it precommits nil, then round 1.
        for vote in others_vote(genesis, me, VoteType.PREVOTE, 1, None):
            await solo.deliver(vote)
        await eventually(lambda: reactor.state.step == Step.PRECOMMIT)
        for vote in others_vote(genesis, me, VoteType.PRECOMMIT, 1, None):
            await solo.deliver(vote)
        await eventually(lambda: reactor.state.round == 1, 10)
        await solo.stop()

    run(main())


def test_app_ahead_of_the_wal_starts_at_the_next_height(tmp_path: Path) -> None:
    """A crash between ``app.commit`` and the end-height marker."""

    async def main() -> None:
        genesis = genesis_validators(4)
        app = FakeApp(genesis, b"solo")
        block_hash, block = app.propose(1, 0, None)
        votes = [
            sign_vote(
                validator_key(i),
                CHAIN_ID,
                Vote(VoteType.PRECOMMIT, 1, 0, block_hash, genesis.validators[i].address),
            )
            for i in range(3)
        ]
        signatures = tuple((v.validator, v.signature) for v in votes)
        app.commit(1, block, Commit(1, 0, block_hash, signatures))
        solo = Solo(tmp_path, genesis, app, 3)
        wal = WAL(tmp_path / "wal")  # the log of height 1 without its end marker
        for vote in votes:
            wal.write(encode_wal_vote(vote))
        wal.close()

        reactor = await solo.start()
        assert reactor.height == 2
        assert solo.wal is not None and solo.wal.replay().end_height == 1
        assert all(
            not isinstance(decode_wal_record(m), Vote) or decode_wal_record(m).height == 2
            for m in solo.wal.replay().messages
        )
        await solo.stop()

    run(main())


def test_undecodable_wal_record_refuses_to_start(tmp_path: Path) -> None:
    async def main() -> None:
        genesis = genesis_validators(4)
        app = FakeApp(genesis, b"solo")
        wal = WAL(tmp_path / "wal")
        wal.write(b"\x7fnot a record")
        wal.close()
        solo = Solo(tmp_path, genesis, app, 0)
        with pytest.raises(ReactorError, match="undecodable"):
            await solo.start()
        assert solo.wal is not None
        solo.wal.close()
        await asyncio.sleep(0)

    run(main())
