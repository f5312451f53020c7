"""Differential test: our executor (flat state, fast path, own trie) against unmodified py-evm.

Random blocks of plain transfers (free and priced, legacy / EIP-2930 / EIP-1559), contract
deployments, calls that succeed, revert, run out of gas, write and clear storage, emit logs and
create-then-self-destruct (EIP-6780) run on our chain; the very same transactions run through
py-evm's own ``PragueState`` over its ``AccountDB`` and hexary trie. State root, receipts root
and every receipt's gas must be identical. Both sides keep only EIP-2935 of Prague's system
operations (see ``execution/block.py``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from eth.constants import BLANK_ROOT_HASH
from eth.db.atomic import AtomicDB
from eth.db.trie import make_trie_root_and_nodes
from eth.vm.execution_context import ExecutionContext
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.constants import HISTORY_SERVE_WINDOW, HISTORY_STORAGE_ADDRESS
from eth.vm.forks.prague.state import PragueState
from eth.vm.forks.prague.transactions import PragueTransactionBuilder
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector as selector
from eth_utils import to_checksum_address

from cybermiles.chain.genesis import GenesisAccount, parse_genesis
from cybermiles.chain.header import ZERO_HASH
from cybermiles.chain.transactions import decode_transaction
from cybermiles.crypto.address import create_address
from cybermiles.modules.lifecycle import genesis_accounts
from cybermiles.node.blockchain import Blockchain

CHAIN_ID = 1234
GWEI = 10**9
BUILD = Path(__file__).resolve().parents[2] / "contracts" / "build"
COINBASE = b"\xc0" * 20


def artifact(name: str) -> dict:
    return json.loads((BUILD / f"{name}.json").read_text())


def call(signature: str, types: list[str], args: list) -> bytes:
    return selector(signature) + abi_encode(types, args)


class Workload:
    """Generates random valid transactions and tracks nonces and deployed contracts."""

    def __init__(self, rng: random.Random, keys: list) -> None:
        self.rng = rng
        self.keys = keys
        self.nonces = {k.address: 0 for k in keys}
        self.contracts: list[bytes] = []
        self.tokens: list[bytes] = []
        self.delegated: set[str] = set()

    def sign(self, key, **fields) -> bytes:
        fields.setdefault("chainId", CHAIN_ID)
        if fields.get("to") is None:
            fields.pop("to", None)
        else:
            fields["to"] = to_checksum_address(fields["to"])
        fields["nonce"] = self.nonces[key.address]
        self.nonces[key.address] += 1
        return bytes(key.sign_transaction(fields).raw_transaction)

    def fee_fields(self, *, free: bool = False) -> dict:
        kind = self.rng.choice(["legacy", "2930", "1559"])
        price = 0 if free else self.rng.choice([GWEI, 2 * GWEI, 7 * GWEI])
        if kind == "legacy":
            return {"gasPrice": price}
        if kind == "2930":
            return {"gasPrice": price, "accessList": [], "type": 1}
        return {"maxFeePerGas": price + self.rng.choice([0, GWEI]), "maxPriorityFeePerGas": price}

    def deploy(self, key, name: str, args: bytes = b"") -> bytes:
        address = create_address(bytes.fromhex(key.address[2:]), self.nonces[key.address])
        raw = self.sign(
            key,
            to=None,
            value=0,
            gas=3_000_000,
            data=bytes.fromhex(artifact(name)["bytecode"][2:]) + args,
            **self.fee_fields(),
        )
        (self.tokens if name == "TestToken" else self.contracts).append(address)
        return raw

    def random_tx(self) -> bytes:
        rng = self.rng
        key = rng.choice(self.keys)
        other = rng.choice(self.keys)
        choice = rng.randrange(12)
        if choice <= 2 or not self.contracts:  # plain transfers, free or priced
            to = rng.choice([other.address, "0x" + rng.randbytes(20).hex(), key.address])
            value = rng.choice([0, 1, 10**18])
            # a delegated EOA (EIP-7702) has code: transfers to it must pay (fee rules)
            free = choice == 0 and to not in self.delegated
            gas = 60_000 if to in self.delegated else 21_000
            return self.sign(key, to=to, value=value, gas=gas, **self.fee_fields(free=free))
        probe = "0x" + rng.choice(self.contracts).hex()
        fee = self.fee_fields()
        if choice == 3:
            data = call("bump(uint256)", ["uint256"], [rng.randrange(1, 100)])
        elif choice == 4:
            data = call(
                "store(uint256,uint256)",
                ["uint256", "uint256"],
                [rng.randrange(4), rng.randrange(3)],
            )
        elif choice == 5:
            data = call("clear(uint256)", ["uint256"], [rng.randrange(4)])
        elif choice == 6:
            data = call("fail(string)", ["string"], ["nope"])
        elif choice == 7:  # runs out of gas
            return self.sign(
                key,
                to=probe,
                value=0,
                gas=60_000,
                data=call("burnGas(uint256)", ["uint256"], [50]),
                **fee,
            )
        elif choice == 8:
            data = call(
                "spawnAndKill(uint256,address)",
                ["uint256", "address"],
                [rng.randrange(2**32), other.address],
            )
            return self.sign(key, to=probe, value=rng.choice([0, 5]), gas=400_000, data=data, **fee)
        elif choice == 9:  # value into the contract's receive()
            return self.sign(key, to=probe, value=3, gas=50_000, data=b"", **fee)
        elif choice == 10 and self.tokens:
            token = "0x" + rng.choice(self.tokens).hex()
            data = call(
                "transfer(address,uint256)",
                ["address", "uint256"],
                [other.address, rng.choice([1, 10**30])],
            )  # 10**30 reverts
            return self.sign(key, to=token, value=0, gas=80_000, data=data, **fee)
        elif choice == 11 and other.address != key.address:  # EIP-7702 sponsored delegation
            auth = other.sign_authorization(
                {"chainId": CHAIN_ID, "address": probe, "nonce": self.nonces[other.address]}
            )
            self.nonces[other.address] += 1  # a valid authorization bumps the authority's nonce
            self.delegated.add(other.address)
            data = call("bump(uint256)", ["uint256"], [rng.randrange(1, 9)])
            return self.sign(
                key,
                to=other.address,
                value=0,
                gas=200_000,
                data=data,
                authorizationList=[auth],
                maxFeePerGas=2 * GWEI,
                maxPriorityFeePerGas=GWEI,
            )
        else:  # precompile (identity) with value: goes through the EVM, not the fast path
            return self.sign(
                key, to="0x" + "00" * 19 + "04", value=1, gas=30_000, data=b"ab", **fee
            )
        return self.sign(key, to=probe, value=0, gas=200_000, data=data, **fee)


def module_accounts(chain: Blockchain) -> dict[bytes, GenesisAccount]:
    """The module accounts as the node created them at genesis (their parameters and staking
    records are the node's business; the execution of blocks on top is what is compared)."""
    out = {}
    with chain.state_at(0) as view:
        for address, _, _ in genesis_accounts():
            account = view.get_account_or_empty(address)
            storage = {
                int.from_bytes(key[20:], "big"): int.from_bytes(raw, "big")
                for key, raw in chain.world._committed_slots(address)
            }
            out[address] = GenesisAccount(
                account.balance, account.nonce, view.get_code(address), storage
            )
    return out


class Reference:
    """Unmodified py-evm: PragueState over AtomicDB + AccountDB (hexary trie)."""

    def __init__(self, genesis_alloc: dict, modules: dict[bytes, GenesisAccount]) -> None:
        self.db = AtomicDB()
        state = self._state(BLANK_ROOT_HASH, number=0, timestamp=0, prev_hashes=())
        for address, account in (genesis_alloc | modules).items():
            state.set_balance(address, account.balance)
            state.set_nonce(address, account.nonce)
            if account.code:
                state.set_code(address, account.code)
            for slot, value in account.storage.items():
                state.set_storage(address, slot, value)
        self.root = state.make_state_root()
        state.persist()

    def _state(
        self, root: bytes, *, number: int, timestamp: int, prev_hashes: tuple
    ) -> PragueState:
        context = ExecutionContext(
            coinbase=COINBASE,
            timestamp=timestamp,
            block_number=number,
            difficulty=0,
            mix_hash=ZERO_HASH,
            gas_limit=30_000_000,
            prev_hashes=prev_hashes,
            chain_id=CHAIN_ID,
            base_fee_per_gas=0,
            excess_blob_gas=0,
        )
        return PragueState(self.db, context, root)

    def run_block(self, header, prev_hashes: tuple, raws: list[bytes]):
        state = self._state(
            self.root,
            number=header.block_number,
            timestamp=header.timestamp,
            prev_hashes=prev_hashes,
        )
        history = HISTORY_STORAGE_ADDRESS
        if state.get_code(history):  # EIP-2935, exactly as PragueVM.block_preprocessing
            state.set_storage(
                history,
                (header.block_number - 1) % HISTORY_SERVE_WINDOW,
                int.from_bytes(header.parent_hash, "big"),
            )
        receipts, cumulative = [], 0
        for raw in raws:
            tx = PragueTransactionBuilder.decode(raw)
            state.lock_changes()
            computation = state.apply_transaction(tx)
            receipt = PragueVM.make_receipt(
                SimpleNamespace(gas_used=cumulative), tx, computation, state
            )
            cumulative = receipt.gas_used
            receipts.append(receipt)
        self.root = state.make_state_root()
        state.persist()
        receipts_root, _ = make_trie_root_and_nodes(tuple(receipts))
        return self.root, receipts_root, [r.gas_used for r in receipts]


@pytest.mark.parametrize("seed", range(6))
def test_random_blocks_match_pyevm(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    keys = [Account.from_key(rng.randbytes(32)) for _ in range(6)]
    genesis = parse_genesis(
        {
            "chain_id": CHAIN_ID,
            "timestamp": 1_000,
            "params": {"block_gas_limit": 30_000_000, "free_tx_quota": 1000},
            "alloc": {k.address: {"balance": str(10**24)} for k in keys}
            | {"0x" + "00" * 19 + "aa": {"balance": "0"}},  # an existing empty account (EIP-161)
        }
    )
    chain = Blockchain(tmp_path / "data", genesis)
    reference = Reference(genesis.alloc, module_accounts(chain))
    assert reference.root == chain.head.state_root

    work = Workload(rng, keys)
    first = [
        work.deploy(keys[0], "Probe"),
        work.deploy(keys[1], "Probe"),
        work.deploy(keys[2], "TestToken", abi_encode(["uint256"], [10**24])),
    ]
    statuses: set[int] = set()
    for block_index in range(5):
        raws = (
            first if block_index == 0 else [work.random_tx() for _ in range(rng.randrange(5, 20))]
        )
        if block_index == 2:  # a zero-value transfer touching the existing empty account
            raws.append(
                work.sign(keys[3], to="0x" + "00" * 19 + "aa", value=0, gas=21_000, gasPrice=GWEI)
            )
        prev_hashes = chain.ancestor_hashes()
        txs = [decode_transaction(raw, CHAIN_ID) for raw in raws]
        block = chain.build_block(txs, timestamp=chain.head.timestamp + 12, coinbase=COINBASE)
        assert block.rejected == [], block.rejected
        root, receipts_root, gas = reference.run_block(block.header, prev_hashes, raws)
        ours_gas = [r.cumulative_gas_used for r in block.receipts]
        assert ours_gas == gas, f"seed {seed} block {block_index}"
        assert block.header.receipt_root == receipts_root
        assert block.header.state_root == root, f"seed {seed} block {block_index}"
        statuses |= {r.status for r in block.receipts}
    assert statuses == {0, 1}  # the workload exercised both successes and failures
    chain.close()


def test_underpriced_contract_call_is_rejected_and_leaves_no_trace(tmp_path: Path) -> None:
    key = Account.from_key(b"\x01" * 32)
    genesis = parse_genesis(
        {"chain_id": CHAIN_ID, "timestamp": 5, "alloc": {key.address: {"balance": str(10**22)}}}
    )
    chain = Blockchain(tmp_path / "data", genesis)
    raw = key.sign_transaction(
        {
            "chainId": CHAIN_ID,
            "nonce": 0,
            "gas": 100_000,
            "gasPrice": 0,
            "to": None,
            "value": 0,
            "data": bytes.fromhex(artifact("Probe")["bytecode"][2:]),
        }
    )
    tx = decode_transaction(bytes(raw.raw_transaction), CHAIN_ID)
    before = chain.head.state_root
    block = chain.build_block([tx], timestamp=10, coinbase=COINBASE)
    assert block.transactions == []
    assert [str(exc) for _, exc in block.rejected] == ["transaction underpriced"]
    with chain.state_at() as state:
        assert state.get_nonce(tx.sender) == 0
    # only the EIP-2935 history slot changed
    assert block.header.state_root != before
    chain.close()
