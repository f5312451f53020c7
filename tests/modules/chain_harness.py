"""Chain-level helpers for tests of the native modules on a real ``Blockchain``.

    keys = [key(i) for i in range(3)]
    genesis = make_genesis(
        validators=[validator(keys[0], max_amount=100_000 * CMT)],
        funded={k.address: 10**6 * CMT for k in keys},
    )
    chain = Chain(tmp_path / "data", genesis)
    receipt = chain.send(keys[1], STAKING, StakingModule.calldata("delegate", addr), value=CMT)
    shares = chain.view(StakingModule, "delegation", candidate, delegator)
    chain.reopen()  # close and open the data directory again

Every block is built with ``coinbase=STAKING`` (as the node does) and one second after its
parent. ``Chain.call`` runs an ``eth_call`` on the head (or an older height); ``Chain.view``
calls a module function and decodes its outputs with the module's own method table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import event_signature_to_log_topic, function_signature_to_4byte_selector

from cybermiles.chain.genesis import Genesis, parse_genesis
from cybermiles.chain.receipts import Receipt
from cybermiles.chain.transactions import Transaction, decode_transaction
from cybermiles.crypto.address import create_address, to_checksum
from cybermiles.execution.call import CallEnv, CallRequest, CallResult, revert_reason, simulate
from cybermiles.modules.addresses import STAKING
from cybermiles.modules.framework.module import Module
from cybermiles.node.blockchain import Blockchain, BuiltBlock

CHAIN_ID = 4242
GWEI = 10**9
CMT = 10**18
BUILD = Path(__file__).resolve().parents[2] / "contracts" / "build"
ZERO_ADDRESS = bytes(20)

# Parameters under which a block changes nothing but what its transactions do: no minting,
# gas is free (price 0 is allowed when min_gas_price is 0), so no fees are distributed either.
QUIET_PARAMS = {"inflation_rate": 0, "min_gas_price": 0}


# --------------------------------------------------------------------------- keys and genesis


def key(index: int) -> LocalAccount:
    """A deterministic test key (index >= 0)."""
    return Account.from_key((index + 1).to_bytes(32, "big"))


def address_of(account: LocalAccount) -> bytes:
    return bytes.fromhex(account.address[2:])


def hexaddr(address: bytes) -> str:
    return to_checksum(address)


def validator(
    owner: LocalAccount | bytes,
    *,
    max_amount: int,
    comp_rate: str | int = "0.2",
    pub_key: bytes | None = None,
    name: str = "",
    delegations: Iterable[tuple[bytes, int]] = (),
) -> dict[str, Any]:
    """A genesis ``validators`` entry (the pub key defaults to one derived from the owner)."""
    address = owner if isinstance(owner, bytes) else address_of(owner)
    return {
        "address": hexaddr(address),
        "pub_key": "0x" + (pub_key or (b"\x01" + address + bytes(11))).hex(),
        "max_amount": str(max_amount),
        "comp_rate": str(comp_rate),
        "name": name,
        "delegations": [{"address": hexaddr(a), "amount": str(v)} for a, v in delegations],
    }


def make_genesis(
    *,
    validators: Sequence[dict[str, Any]] = (),
    funded: Mapping[bytes, int] | None = None,
    params: Mapping[str, int] | None = None,
    code: Mapping[bytes, bytes] | None = None,
    chain_id: int = CHAIN_ID,
    timestamp: int = 1_000,
) -> Genesis:
    """A genesis with ``validators`` (``validator(...)`` entries), ``funded`` balances,
    ``params`` (names of ``chain.params.Params``; defaults otherwise) and accounts holding
    runtime ``code``."""
    alloc: dict[str, dict[str, str]] = {
        hexaddr(a): {"balance": str(b)} for a, b in (funded or {}).items()
    }
    for address, runtime in (code or {}).items():
        alloc.setdefault(hexaddr(address), {"balance": "0"})["code"] = "0x" + runtime.hex()
    return parse_genesis(
        {
            "chain_id": chain_id,
            "timestamp": timestamp,
            "params": {k: str(v) for k, v in (params or {}).items()},
            "alloc": alloc,
            "validators": list(validators),
        }
    )


def artifact(name: str) -> dict[str, Any]:
    """``contracts/build/NAME.json``."""
    return json.loads((BUILD / f"{name}.json").read_text())


def encode_call(signature: str, *args: Any) -> bytes:
    """Call data for a Solidity signature such as ``"delegate(address,uint256)"``."""
    types = signature[signature.index("(") + 1 : -1]
    arg_types = _split_types(types)
    return function_signature_to_4byte_selector(signature) + abi_encode(arg_types, list(args))


def _split_types(types: str) -> list[str]:
    out, depth, start = [], 0, 0
    for i, ch in enumerate(types):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(types[start:i])
            start = i + 1
    if types:
        out.append(types[start:])
    return out


class CallReverted(AssertionError):
    """A view or call expected to succeed reverted; ``reason`` is the decoded revert reason."""

    def __init__(self, result: CallResult) -> None:
        self.result = result
        self.reason = revert_reason(result.output)
        super().__init__(f"call failed: {result.error} ({self.reason!r})")


# --------------------------------------------------------------------------- the chain


class Chain:
    """A ``Blockchain`` in ``path`` plus signing, block building and calls."""

    def __init__(self, path: Path, genesis: Genesis, *, gas_price: int = GWEI) -> None:
        self.path = path
        self.genesis = genesis
        self.gas_price = gas_price
        self.chain = Blockchain(path, genesis)
        self.last_block: BuiltBlock | None = None  # the block ``block``/``send`` built last

    # -- lifecycle
    def reopen(self) -> None:
        """Close the data directory and open it again (a node restart)."""
        self.chain.close()
        self.chain = Blockchain(self.path, self.genesis)

    def close(self) -> None:
        self.chain.close()

    @property
    def height(self) -> int:
        return self.chain.head.block_number

    @property
    def state_root(self) -> bytes:
        return self.chain.head.state_root

    # -- transactions
    def tx(
        self,
        sender: LocalAccount,
        to: bytes | None,
        data: bytes = b"",
        *,
        value: int = 0,
        gas: int = 3_000_000,
        gas_price: int | None = None,
        nonce: int | None = None,
    ) -> Transaction:
        """A signed EIP-1559 transaction; the nonce defaults to the sender's in the head state."""
        price = self.gas_price if gas_price is None else gas_price
        fields: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain.chain_id,
            "nonce": self.nonce(address_of(sender)) if nonce is None else nonce,
            "gas": gas,
            "maxFeePerGas": price,
            "maxPriorityFeePerGas": price,
            "value": value,
            "data": data,
        }
        if to is not None:
            fields["to"] = hexaddr(to)
        raw = bytes(sender.sign_transaction(fields).raw_transaction)
        return decode_transaction(raw, self.chain.chain_id)

    def block(self, txs: Iterable[Transaction] = (), *, coinbase: bytes = STAKING) -> BuiltBlock:
        """Build and commit a block of ``txs``; every one must be included."""
        block = self.chain.build_block(
            list(txs), timestamp=self.chain.head.timestamp + 1, coinbase=coinbase
        )
        assert block.rejected == [], [(t.hash.hex(), str(e)) for t, e in block.rejected]
        self.last_block = block
        return block

    def send(
        self,
        sender: LocalAccount,
        to: bytes | None,
        data: bytes = b"",
        *,
        value: int = 0,
        gas: int = 3_000_000,
        gas_price: int | None = None,
    ) -> Receipt:
        """One transaction in its own block; its receipt."""
        tx = self.tx(sender, to, data, value=value, gas=gas, gas_price=gas_price)
        return self.block([tx]).receipts[0]

    def deploy(
        self, sender: LocalAccount, name: str, *, value: int = 0, args: bytes = b""
    ) -> bytes:
        """Deploy ``contracts/build/NAME.json``; its address."""
        address = create_address(address_of(sender), self.nonce(address_of(sender)))
        code = bytes.fromhex(artifact(name)["bytecode"][2:]) + args
        receipt = self.send(sender, None, code, value=value, gas=5_000_000)
        assert receipt.status == 1, f"deploying {name} failed"
        return address

    def last_fee(self, index: int = 0) -> int:
        """What transaction ``index`` of the last block paid for gas (wei)."""
        assert self.last_block is not None
        tx = self.last_block.transactions[index]
        price = min(tx.max_fee_per_gas, tx.max_priority_fee_per_gas)
        return self.gas_of(self.last_block, index) * price

    @staticmethod
    def gas_of(block: BuiltBlock, index: int) -> int:
        """Gas used by transaction ``index`` of ``block``."""
        receipts = block.receipts
        previous = receipts[index - 1].cumulative_gas_used if index else 0
        return receipts[index].cumulative_gas_used - previous

    # -- reads
    def balance(self, address: bytes, height: int | None = None) -> int:
        with self.chain.state_at(height) as view:
            return view.get_balance(address)

    def nonce(self, address: bytes, height: int | None = None) -> int:
        with self.chain.state_at(height) as view:
            return view.get_nonce(address)

    def storage(self, address: bytes, slot: int, height: int | None = None) -> int:
        with self.chain.state_at(height) as view:
            return view.get_storage(address, slot)

    def call(
        self,
        to: bytes,
        data: bytes,
        *,
        sender: bytes = ZERO_ADDRESS,
        value: int = 0,
        height: int | None = None,
    ) -> CallResult:
        """``eth_call`` on the state after block ``height`` (default: head)."""
        request = CallRequest(sender=sender, to=to, data=data, value=value)
        with self.chain.state_at(height) as view:
            header = self.chain.blocks.header(view.height)
            assert header is not None
            env = CallEnv.from_header(header, self.chain.chain_id, self.chain.blocks.header)
            return simulate(view, env, request)

    def view(
        self,
        module: type[Module],
        name: str,
        *args: Any,
        sender: bytes = ZERO_ADDRESS,
        height: int | None = None,
    ) -> Any:
        """Call module function ``name`` and decode its outputs (one output: the value;
        several: a tuple). Raises ``CallReverted`` with the reason if it reverts."""
        spec = module.spec(name)
        result = self.call(
            module.address, module.calldata(name, *args), sender=sender, height=height
        )
        if not result.success:
            raise CallReverted(result)
        values = abi_decode(list(spec.outputs), result.output)
        return values[0] if len(values) == 1 else tuple(values)

    def contract_view(self, to: bytes, signature: str, returns: Sequence[str], *args: Any) -> Any:
        """Call a contract function and decode ``returns``; like ``view``."""
        result = self.call(to, encode_call(signature, *args))
        if not result.success:
            raise CallReverted(result)
        values = abi_decode(list(returns), result.output)
        return values[0] if len(values) == 1 else tuple(values)


# --------------------------------------------------------------------------- logs


def _abi_type(param: dict[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


class EventDecoder:
    """Decodes logs with the events of compiled ABIs (``contracts/build/NAME.json``), strictly:
    the topic count must match the indexed inputs and the data must be exactly the ABI encoding
    of the non-indexed ones."""

    def __init__(self, *artifact_names: str) -> None:
        self.events: dict[bytes, tuple[str, list[dict[str, Any]]]] = {}
        for name in artifact_names:
            for entry in artifact(name)["abi"]:
                if entry["type"] != "event":
                    continue
                signature = f"{entry['name']}({','.join(_abi_type(p) for p in entry['inputs'])})"
                self.events[event_signature_to_log_topic(signature)] = (
                    entry["name"],
                    entry["inputs"],
                )

    def decode(self, log: Any) -> tuple[str, dict[str, Any]]:
        """``(event name, {input name: value})`` of one log (addresses as 20 raw bytes)."""
        assert log.topics, "anonymous log"
        name, inputs = self.events[bytes(log.topics[0])]
        indexed = [p for p in inputs if p["indexed"]]
        plain = [p for p in inputs if not p["indexed"]]
        assert len(log.topics) == 1 + len(indexed), (name, len(log.topics))
        values: dict[str, Any] = {}
        for param, topic in zip(indexed, log.topics[1:], strict=True):
            (values[param["name"]],) = abi_decode([_abi_type(param)], bytes(topic))
        types = [_abi_type(p) for p in plain]
        decoded = abi_decode(types, bytes(log.data)) if types else ()
        assert abi_encode(types, list(decoded)) == bytes(log.data), f"{name}: data not canonical"
        values.update(zip((p["name"] for p in plain), decoded, strict=True))
        return name, {k: _raw(v) for k, v in values.items()}

    def decode_all(self, logs: Iterable[Any]) -> list[tuple[bytes, str, dict[str, Any]]]:
        """``(emitting address, name, values)`` of every log, in order."""
        return [(bytes(log.address), *self.decode(log)) for log in logs]


def _raw(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return bytes.fromhex(value[2:])
    return value
