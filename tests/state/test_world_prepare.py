"""WorldState.prepare_block / write_block / discard_prepared / suspend_prepared.

A prepared block's root is computed in the in-memory tries; discarding it must leave the tries
(roots, proofs, storage tries) exactly as before, so the next block's root is still right.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from test_world_state import reference_root

from cybermiles.chain.database import Database
from cybermiles.state.account import Account
from cybermiles.state.world import WorldState

ADDRESSES = [bytes([i]) * 20 for i in range(1, 12)]


def random_writes(
    world: WorldState,
    rng: random.Random,
    accounts: dict[bytes, Account],
    storage: dict[bytes, dict[int, int]],
) -> None:
    """Random account/storage writes and deletions into ``world`` and the model dicts."""
    for _ in range(30):
        address = rng.choice(ADDRESSES)
        op = rng.randrange(10)
        if op < 5:
            acct = Account(rng.randrange(5), rng.randrange(10**20))
            world.set_account(address, acct)
            accounts[address] = acct
        elif op < 8 and address in accounts:
            slot, value = rng.randrange(6), rng.choice([0, 1, 2**255])
            world.set_storage(address, slot, value)
            storage.setdefault(address, {})[slot] = value
        elif op < 9 and address in accounts:
            world.wipe_storage(address)
            storage.pop(address, None)
        elif address in accounts:
            world.set_account(address, None)
            del accounts[address]
            storage.pop(address, None)
    world.clear_journal()


def write(world: WorldState, prepared, number: int) -> None:  # type: ignore[no-untyped-def]
    with world.db.begin(write=True) as txn:
        world.write_block(txn, prepared)
        txn.put(b"head", number.to_bytes(8, "big"), db=world.db[b"meta"])


def proofs(world: WorldState) -> list[object]:
    out: list[object] = []
    for address in ADDRESSES:
        out.append(world.prove_account(address))
        out.extend(world.prove_storage(address, slot) for slot in range(6))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_discarded_blocks_leave_the_tries_exactly_as_before(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    world = WorldState(Database(tmp_path / "db"))
    accounts: dict[bytes, Account] = {}
    storage: dict[bytes, dict[int, int]] = {}
    root = world.state_root()
    for number in range(1, 10):
        # A block that is prepared and then dropped (a losing proposal) ...
        before = proofs(world)
        random_writes(world, rng, dict(accounts), {a: dict(s) for a, s in storage.items()})
        discarded = world.prepare_block(number)
        assert world.prepared is discarded
        world.discard_prepared(discarded)
        assert world.prepared is None
        assert world.state_root() == root
        assert proofs(world) == before
        # ... then the block that commits.
        random_writes(world, rng, accounts, storage)
        prepared = world.prepare_block(number)
        assert prepared.root == reference_root(accounts, storage)
        if number % 3 == 0:  # proofs while prepared: suspended, then replayed at the write
            assert proofs(world) == before
            assert world.state_root() == root
        write(world, prepared, number)
        root = prepared.root
        assert world.state_root() == root
        assert WorldState(world.db).state_root() == root  # LMDB holds the same state


def test_one_prepared_block_at_a_time(tmp_path: Path) -> None:
    world = WorldState(Database(tmp_path / "db"))
    world.set_account(ADDRESSES[0], Account(1, 1))
    prepared = world.prepare_block(1)
    with pytest.raises(RuntimeError, match="prepared"):
        world.prepare_block(1)
    world.discard_prepared(prepared)
    with pytest.raises(RuntimeError):
        world.discard_prepared(prepared)
    # Discarded writes are gone: the committed state is still empty.
    assert world.get_account(ADDRESSES[0]) is None


def test_commit_block_without_journal(tmp_path: Path) -> None:
    world = WorldState(Database(tmp_path / "db"))
    world.set_account(ADDRESSES[0], Account(1, 1))
    prepared = world.prepare_block(1, undo=False)
    assert prepared.journal is None
    with pytest.raises(RuntimeError, match="undo journal"):
        world.discard_prepared(prepared)
