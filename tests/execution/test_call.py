"""Simulated calls (execution/call.py) over an OverlayState at any kept height.

A module-scoped chain deploys TestToken and Probe and bumps Probe's counter; calls read it at
the head and at older heights, revert with reasons and custom errors, take state overrides,
estimate gas and build access lists, and never change the committed state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector as selector

from cybermiles.chain.genesis import parse_genesis
from cybermiles.chain.header import header_hash
from cybermiles.chain.transactions import decode_transaction
from cybermiles.crypto.address import create_address, to_checksum
from cybermiles.crypto.keccak import keccak256
from cybermiles.execution.call import (
    AccountOverride,
    CallEnv,
    CallError,
    CallFailed,
    CallRequest,
    CallResult,
    IntrinsicGasTooLow,
    Simulator,
    create_access_list,
    estimate_gas,
    revert_message,
    revert_reason,
    simulate,
)
from cybermiles.node.blockchain import Blockchain
from cybermiles.state.overlay import OverlayState

CHAIN_ID = 1234
GWEI = 10**9
SUPPLY = 10**24
COINBASE = b"\xc0" * 20
BUILD = Path(__file__).resolve().parents[2] / "contracts" / "build"
KEY = Account.from_key(b"\x01" * 32)
OTHER = Account.from_key(b"\x02" * 32)
SENDER = bytes.fromhex(KEY.address[2:])
POOR = b"\x77" * 20  # holds nothing


def artifact(name: str) -> dict[str, Any]:
    return json.loads((BUILD / f"{name}.json").read_text())


def calldata(signature: str, types: list[str], args: list[Any]) -> bytes:
    return selector(signature) + abi_encode(types, args)


def balance_slot(holder: bytes) -> int:
    """TestToken keeps ``balanceOf`` at slot 0: keccak(pad(holder) ++ pad(0))."""
    return int.from_bytes(keccak256(b"\x00" * 12 + holder + b"\x00" * 32), "big")


class Deployed:
    """The test chain and what it holds."""

    def __init__(self, path: Path) -> None:
        genesis = parse_genesis(
            {
                "chain_id": CHAIN_ID,
                "timestamp": 1_000,
                "alloc": {KEY.address: {"balance": str(10**24)}},
            }
        )
        self.chain = Blockchain(path, genesis)
        self.nonce = 0
        self.token = create_address(SENDER, 0)
        self.probe = create_address(SENDER, 1)
        self.mine(
            None,
            bytes.fromhex(artifact("TestToken")["bytecode"][2:])
            + abi_encode(["uint256"], [SUPPLY]),
        )
        self.mine(None, bytes.fromhex(artifact("Probe")["bytecode"][2:]))
        self.before_bump = self.chain.head.block_number
        self.mine(self.probe, calldata("bump(uint256)", ["uint256"], [5]))
        self.bumped = self.chain.head.block_number

    def mine(self, to: bytes | None, data: bytes, gas: int = 3_000_000) -> Any:
        fields: dict[str, Any] = {
            "chainId": CHAIN_ID,
            "nonce": self.nonce,
            "gas": gas,
            "maxFeePerGas": GWEI,
            "maxPriorityFeePerGas": GWEI,
            "value": 0,
            "data": data,
        }
        if to is not None:
            fields["to"] = to_checksum(to)
        self.nonce += 1
        raw = bytes(KEY.sign_transaction(fields).raw_transaction)
        head = self.chain.head
        block = self.chain.build_block(
            [decode_transaction(raw, CHAIN_ID)], timestamp=head.timestamp + 1, coinbase=COINBASE
        )
        assert block.rejected == [], block.rejected
        return block.receipts[0]

    def env(self, height: int) -> CallEnv:
        header = self.chain.blocks.header(height)
        assert header is not None
        return CallEnv.from_header(header, CHAIN_ID, self.chain.blocks.header)

    def call(self, request: CallRequest, height: int | None = None, **kwargs: Any) -> CallResult:
        with self.chain.state_at(height) as view:
            return simulate(view, self.env(view.height), request, **kwargs)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    deployed = Deployed(tmp_path_factory.mktemp("call") / "data")
    yield deployed
    deployed.chain.close()


def token_call(world: Deployed, data: bytes, **fields: Any) -> CallRequest:
    return CallRequest(sender=SENDER, to=world.token, data=data, **fields)


def balance_of(holder: bytes) -> bytes:
    return calldata("balanceOf(address)", ["address"], ["0x" + holder.hex()])


def as_uint(output: bytes) -> int:
    return int(abi_decode(["uint256"], output)[0])


COUNTER = calldata("counter()", [], [])


def test_reads_at_latest_and_older_heights(world: Deployed) -> None:
    result = world.call(token_call(world, balance_of(SENDER)))
    assert result.success and result.error is None
    assert as_uint(result.output) == SUPPLY
    assert result.gas_used > 21_000
    probe = CallRequest(to=world.probe, data=COUNTER)  # from the zero address
    assert as_uint(world.call(probe).output) == 5
    assert as_uint(world.call(probe, world.bumped).output) == 5
    assert as_uint(world.call(probe, world.before_bump).output) == 0
    before_deploy = world.call(probe, 0)  # no code yet: an empty success
    assert before_deploy.success and before_deploy.output == b""


def test_block_context_is_the_requested_header(world: Deployed) -> None:
    env = world.env(world.bumped)
    header = world.chain.blocks.header(world.bumped)
    assert header is not None
    assert (env.number, env.timestamp, env.coinbase) == (
        world.bumped,
        header.timestamp,
        header.coinbase,
    )
    parents = [world.chain.blocks.header(n) for n in range(world.bumped - 1, -1, -1)]
    assert list(env.ancestor_hashes) == [header_hash(h) for h in parents if h is not None]
    assert list(world.env(0).ancestor_hashes) == []


def test_revert_reason_and_custom_error(world: Deployed) -> None:
    fail = CallRequest(to=world.probe, data=calldata("fail(string)", ["string"], ["nope"]))
    result = world.call(fail)
    assert not result.success and result.reverted
    assert result.error == "execution reverted"
    assert result.revert_data == calldata("Error(string)", ["string"], ["nope"])
    assert revert_reason(result.revert_data) == "nope"
    assert revert_message(result.revert_data) == "execution reverted: nope"

    transfer = calldata("transfer(address,uint256)", ["address", "uint256"], [KEY.address, 3])
    custom = world.call(CallRequest(sender=POOR, to=world.token, data=transfer))
    assert custom.reverted
    assert custom.revert_data == calldata(
        "InsufficientBalance(uint256,uint256)", ["uint256", "uint256"], [0, 3]
    )
    assert revert_message(custom.revert_data) == "execution reverted"
    panic = calldata("Panic(uint256)", ["uint256"], [0x11])
    assert revert_message(panic) == "execution reverted: arithmetic underflow or overflow"


def test_state_overrides(world: Deployed) -> None:
    slot = balance_slot(POOR)
    diff = {world.token: AccountOverride(state_diff={slot: 42})}
    assert as_uint(world.call(token_call(world, balance_of(POOR)), overrides=diff).output) == 42
    # stateDiff keeps the other slots; state replaces all of them
    mine = token_call(world, balance_of(SENDER))
    assert as_uint(world.call(mine, overrides=diff).output) == SUPPLY
    full = {world.token: AccountOverride(state={slot: 1})}
    assert as_uint(world.call(mine, overrides=full).output) == 0
    # code + storage at a fresh address; balance and nonce
    elsewhere = b"\x42" * 20
    runtime = bytes.fromhex(artifact("Probe")["deployedBytecode"][2:])
    override = {elsewhere: AccountOverride(code=runtime, state={0: 9})}
    assert (
        as_uint(world.call(CallRequest(to=elsewhere, data=COUNTER), overrides=override).output) == 9
    )
    rich = {POOR: AccountOverride(balance=10**18, nonce=7)}
    paid = CallRequest(sender=POOR, to=world.probe, value=10, gas=50_000, gas_price=GWEI)
    with pytest.raises(CallError):
        world.call(paid)
    assert world.call(paid, overrides=rich).success


def test_calls_change_nothing(world: Deployed) -> None:
    root = world.chain.head.state_root
    bump = CallRequest(
        sender=SENDER, to=world.probe, data=calldata("bump(uint256)", ["uint256"], [1])
    )
    result = world.call(bump)
    assert result.success and len(result.logs) == 1
    assert result.logs[0].address == world.probe
    assert as_uint(world.call(CallRequest(to=world.probe, data=COUNTER)).output) == 5
    estimate_gas_at(world, bump)
    with world.chain.state_at() as view:
        assert view.get_nonce(SENDER) == world.nonce
        assert view.get_storage(world.probe, 0) == 5
    assert world.chain.world.state_root() == root == world.chain.head.state_root


def test_overlay_reads_the_view_and_is_never_committed(world: Deployed) -> None:
    with world.chain.state_at(world.before_bump) as view:
        overlay = OverlayState(view)
        assert overlay.get_storage(world.probe, 0) == 0
        assert overlay.get_code(overlay.get_account_or_empty(world.probe).code_hash)
        overlay.set_storage(world.probe, 0, 3)
        copy = overlay.copy()
        copy.set_storage(world.probe, 0, 4)
        assert (overlay.get_storage(world.probe, 0), copy.get_storage(world.probe, 0)) == (3, 4)
        with pytest.raises(TypeError):
            overlay.state_root()
    with world.chain.state_at() as view:
        assert view.get_storage(world.probe, 0) == 5


def test_execution_errors(world: Deployed) -> None:
    burn = CallRequest(to=world.probe, data=calldata("burnGas(uint256)", ["uint256"], [100]))
    out_of_gas = world.call(replace_gas(burn, 60_000))
    assert not out_of_gas.success and out_of_gas.error == "out of gas"
    assert out_of_gas.gas_used == 60_000 and not out_of_gas.reverted
    code = b"\x00" * 20
    for runtime, message in (
        (b"\xfe", "invalid opcode: INVALID"),
        (b"\xef", "invalid opcode: opcode 0xef not defined"),
        (b"\x56", "stack underflow"),
        (b"\x60\x00\x56", "invalid jump destination"),
    ):
        result = world.call(
            CallRequest(to=code, gas=100_000), overrides={code: AccountOverride(code=runtime)}
        )
        assert result.error == message
    timeout = CallRequest(to=world.probe, data=calldata("burnGas(uint256)", ["uint256"], [10**6]))
    with pytest.raises(CallError, match=r"execution aborted \(timeout = 0.05s\)"):
        world.call(timeout, timeout=0.05)


def replace_gas(request: CallRequest, gas: int) -> CallRequest:
    return replace(request, gas=gas)


def test_pre_checks(world: Deployed) -> None:
    poor = CallRequest(sender=POOR, to=world.probe, gas=30_000, gas_price=GWEI, value=5)
    with pytest.raises(CallError) as info:
        world.call(poor)
    assert str(info.value) == (
        f"insufficient funds for gas * price + value: address {to_checksum(POOR)} "
        f"have 0 want {30_000 * GWEI + 5}"
    )
    with pytest.raises(IntrinsicGasTooLow, match="intrinsic gas too low: have 20000, want 21000"):
        world.call(CallRequest(to=world.probe, gas=20_000))
    with pytest.raises(IntrinsicGasTooLow, match="floor data gas"):
        world.call(CallRequest(to=world.probe, gas=23_000, data=b"\x01" * 100))
    with pytest.raises(CallError, match="both gasPrice and"):
        world.call(CallRequest(to=world.probe, gas_price=1, max_fee_per_gas=1))
    with pytest.raises(CallError, match="max priority fee per gas higher than max fee per gas"):
        world.call(CallRequest(to=world.probe, max_fee_per_gas=1, max_priority_fee_per_gas=2))
    # no price: no fee, and a zero-balance sender may call
    assert world.call(CallRequest(sender=POOR, to=world.probe, data=COUNTER)).success


def test_creation_returns_code_and_uses_the_given_nonce(world: Deployed) -> None:
    init = bytes.fromhex(artifact("Probe")["bytecode"][2:])
    created = world.call(CallRequest(sender=SENDER, data=init))
    assert created.success
    assert created.output == bytes.fromhex(artifact("Probe")["deployedBytecode"][2:])
    # init code returning ADDRESS as the "runtime code": the address the creation got
    whoami = bytes.fromhex("3060005260206000f3")  # mstore(0, address); return(0, 32)
    at_state_nonce = world.call(CallRequest(sender=SENDER, data=whoami)).output
    assert at_state_nonce[12:] == create_address(SENDER, world.nonce)
    at_77 = world.call(CallRequest(sender=SENDER, data=whoami, nonce=77)).output
    assert at_77[12:] == create_address(SENDER, 77)


def estimate_gas_at(world: Deployed, request: CallRequest, **kwargs: Any) -> int:
    with world.chain.state_at() as view:
        return estimate_gas(view, world.env(view.height), request, **kwargs)


def test_estimate_gas(world: Deployed) -> None:
    assert estimate_gas_at(world, CallRequest(sender=SENDER, to=POOR, value=1)) == 21_000
    assert estimate_gas_at(world, CallRequest(sender=SENDER, to=POOR, gas_price=GWEI)) == 21_000
    transfer = calldata("transfer(address,uint256)", ["address", "uint256"], [OTHER.address, 10])
    request = token_call(world, transfer)
    estimate = estimate_gas_at(world, request)
    used = world.call(request).gas_used
    assert used <= estimate <= used * 1.02 + 2300
    # the estimate itself succeeds, and the transaction mined with it too
    assert world.call(replace_gas(request, estimate)).success
    receipt = world.mine(world.token, transfer, gas=estimate)
    assert receipt.status == 1

    fail = CallRequest(to=world.probe, data=calldata("fail(string)", ["string"], ["nope"]))
    with pytest.raises(CallFailed) as info:
        estimate_gas_at(world, fail)
    assert info.value.result.reverted
    assert revert_reason(info.value.result.revert_data) == "nope"
    with pytest.raises(CallError, match="insufficient funds for transfer"):
        estimate_gas_at(world, CallRequest(sender=POOR, to=SENDER, value=1))
    with pytest.raises(CallError, match="insufficient funds for transfer"):
        estimate_gas_at(world, CallRequest(sender=POOR, to=SENDER, value=0, gas_price=1))
    burn = CallRequest(to=world.probe, data=calldata("burnGas(uint256)", ["uint256"], [100]))
    with pytest.raises(CallError, match=r"gas required exceeds allowance \(100000\)"):
        estimate_gas_at(world, replace_gas(burn, 100_000))
    # a fee cap limits the search by what the sender can pay
    rich = {POOR: AccountOverride(balance=50_000 * GWEI)}
    with pytest.raises(CallError, match=r"gas required exceeds allowance \(50000\)"):
        estimate_gas_at(
            world,
            CallRequest(sender=POOR, to=world.probe, data=burn.data, gas_price=GWEI),
            overrides=rich,
        )


def test_estimate_covers_refunds_and_the_floor(world: Deployed) -> None:
    data_slot = int.from_bytes(keccak256((0).to_bytes(32, "big") + (1).to_bytes(32, "big")), "big")
    stored = {world.probe: AccountOverride(state_diff={data_slot: 7})}
    clear = CallRequest(to=world.probe, data=calldata("clear(uint256)", ["uint256"], [0]))
    result = world.call(clear, overrides=stored)
    assert result.success and result.refund > 0
    estimate = estimate_gas_at(world, clear, overrides=stored)
    assert estimate > result.gas_used  # the refund is paid back only after execution
    assert world.call(replace_gas(clear, estimate), overrides=stored).success

    floor_heavy = CallRequest(sender=SENDER, to=POOR, data=b"\x01" * 1000)
    floor = 21_000 + 10 * 4 * 1000  # EIP-7623 floor above the 37000 intrinsic gas
    assert world.call(floor_heavy).gas_used == floor
    assert floor <= estimate_gas_at(world, floor_heavy) <= floor * 1.02
    with pytest.raises(IntrinsicGasTooLow):
        world.call(replace_gas(floor_heavy, floor - 1))


def test_create_access_list(world: Deployed) -> None:
    transfer = calldata("transfer(address,uint256)", ["address", "uint256"], [OTHER.address, 1])
    request = token_call(world, transfer)
    with world.chain.state_at() as view:
        found = create_access_list(view, world.env(view.height), request)
        simulator = Simulator(view, world.env(view.height))
        with_list = simulator.run(token_call(world, transfer, access_list=found.access_list))
    other = bytes.fromhex(OTHER.address[2:])
    assert found.access_list == (
        (world.token, tuple(sorted([balance_slot(SENDER), balance_slot(other)]))),
    )
    assert found.error is None
    assert found.gas_used == with_list.gas_used
    # the sender, the recipient (address only) and precompiles are left out
    identity = CallRequest(sender=SENDER, to=b"\x00" * 19 + b"\x04", data=b"ab")
    with world.chain.state_at() as view:
        assert create_access_list(view, world.env(view.height), identity).access_list == ()
