"""WorldState: journal snapshot/revert, commit to LMDB, roots against py-trie, history reads."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from trie import HexaryTrie

from cybermiles.chain.database import Database
from cybermiles.crypto.keccak import keccak256
from cybermiles.state.account import Account, encode_account, encode_storage_value
from cybermiles.state.view import StateUnavailable, StateView
from cybermiles.state.world import WorldState


def reference_root(accounts: dict[bytes, Account], storage: dict[bytes, dict[int, int]]) -> bytes:
    """State root computed independently with py-trie from plain dicts."""
    state = HexaryTrie({})
    for address, account in accounts.items():
        slots = HexaryTrie({})
        for slot, value in storage.get(address, {}).items():
            if value:
                slots[keccak256(slot.to_bytes(32, "big"))] = encode_storage_value(value)
        full = Account(account.nonce, account.balance, slots.root_hash, account.code_hash)
        state[keccak256(address)] = encode_account(full)
    return state.root_hash


def commit(world: WorldState, number: int) -> bytes:
    with world.db.begin(write=True) as txn:
        root = world.commit_block(txn, number)
        txn.put(b"head", number.to_bytes(8, "big"), db=world.db[b"meta"])
    return root


@pytest.fixture
def world(tmp_path: Path) -> WorldState:
    return WorldState(Database(tmp_path / "db"), history_blocks=3)


def test_revert_restores_accounts_storage_and_wipes(world: WorldState) -> None:
    a, b = b"\x01" * 20, b"\x02" * 20
    world.set_account(a, Account(1, 100))
    world.set_storage(a, 1, 7)
    snap = world.snapshot()
    world.set_account(a, Account(2, 50))
    world.set_storage(a, 1, 8)
    world.set_storage(a, 2, 9)
    world.set_account(b, Account(0, 5))
    world.set_account(a, None)  # delete + wipe
    assert world.get_account(a) is None and world.get_storage(a, 1) == 0
    world.revert(snap)
    assert world.get_account(a) == Account(1, 100)
    assert world.get_storage(a, 1) == 7 and world.get_storage(a, 2) == 0
    assert world.get_account(b) is None


def test_random_blocks_roots_match_pytrie_and_history_reads(world: WorldState) -> None:
    rng = random.Random(7)
    addresses = [bytes([i]) * 20 for i in range(1, 12)]
    accounts: dict[bytes, Account] = {}
    storage: dict[bytes, dict[int, int]] = {}
    snapshots = []
    for number in range(1, 9):
        for _ in range(30):
            address = rng.choice(addresses)
            op = rng.randrange(10)
            if op < 5:
                acct = Account(rng.randrange(5), rng.randrange(10**20))
                world.set_account(address, acct)
                accounts[address] = acct
            elif op < 9 and address in accounts:
                slot, value = rng.randrange(6), rng.choice([0, 1, 2**255])
                world.set_storage(address, slot, value)
                storage.setdefault(address, {})[slot] = value
            elif address in accounts:
                world.set_account(address, None)
                del accounts[address]
                storage.pop(address, None)
        world.clear_journal()
        root = commit(world, number)
        assert root == reference_root(accounts, storage), f"block {number}"
        snapshots.append(
            (
                {a: acc.balance for a, acc in accounts.items()},
                {a: dict(s) for a, s in storage.items()},
            )
        )

    head = 8
    with world.db.begin() as txn:
        for number in range(head - 3, head + 1):  # the kept window
            balances, slots = snapshots[number - 1]
            view = StateView(world.db, txn, number, head)
            for address in addresses:
                assert view.get_balance(address) == balances.get(address, 0)
                for slot in range(6):
                    assert view.get_storage(address, slot) == slots.get(address, {}).get(slot, 0)
        with pytest.raises(StateUnavailable, match="no longer kept"):
            StateView(world.db, txn, 1, head)


def test_reopen_rebuilds_the_same_root(tmp_path: Path) -> None:
    db = Database(tmp_path / "db")
    world = WorldState(db)
    for i in range(1, 50):
        world.set_account(bytes([i]) * 20, Account(i, i * 10))
        world.set_storage(bytes([i]) * 20, i, i)
    root = commit(world, 1)
    assert WorldState(db).state_root() == root
