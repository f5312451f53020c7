"""Genesis: the chain id, the first block's fields, the initial state and the parameters.

File format (``genesis.json``)::

    {
      "chain_id": 1234,
      "timestamp": 1700000000,
      "extra_data": "0x",
      "params": {"min_gas_price": "1000000000", ...},
      "alloc": {"0xADDRESS": {"balance": "0x..", "nonce": 0, "code": "0x..",
                              "storage": {"0x0": "0x1"}}},
      "validators": [{"address": "0xOWNER", "pub_key": "0x<32-byte ed25519>",
                      "max_amount": "10000000000000000000000000", "comp_rate": "0.2",
                      "name": "v0", "website": "", "location": "", "email": "", "profile": "",
                      "delegations": [{"address": "0xDELEGATOR", "amount": "..."}],
                      "beacon_commitment": "0x<32-byte hash-onion tip, optional>"}]
    }

A genesis validator is a candidate declared at block 0: its self-stake (``max_amount ×
self_staking_ratio / 10000``) and its delegations are created in the staking module's balance,
on top of ``alloc``. ``comp_rate`` is a decimal fraction (``"0.2"``) or 18-decimal fixed point.
``beacon_commitment``, optional, is the tip of the validator's hash onion for the random beacon
(docs/beacon.md), live from block 1.

Integers may be JSON numbers, decimal strings or 0x-hex strings. Every error names its field.
The EIP-2935 block-hash history contract is added to ``alloc`` unless already present.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth.vm.forks.prague.constants import HISTORY_STORAGE_ADDRESS, HISTORY_STORAGE_CONTRACT_CODE

from cybermiles.chain.errors import GenesisError
from cybermiles.chain.params import MAX_UINT64, WAD, Params, parse_int, parse_params

_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX_RE = re.compile(r"^0x([0-9a-fA-F]{2})*$")
MAX_UINT256 = 2**256 - 1
KNOWN_FIELDS = {"chain_id", "timestamp", "extra_data", "params", "alloc", "validators"}


@dataclass(frozen=True, slots=True)
class GenesisAccount:
    balance: int = 0
    nonce: int = 0
    code: bytes = b""
    storage: dict[int, int] = field(default_factory=dict)


DESCRIPTION_FIELDS = ("name", "website", "location", "email", "profile")


@dataclass(frozen=True, slots=True)
class GenesisValidator:
    address: bytes  # the candidate's owner account
    pub_key: bytes  # Ed25519 consensus key, 32 bytes
    max_amount: int
    comp_rate: int  # 18-decimal fixed point
    description: tuple[str, str, str, str, str] = ("", "", "", "", "")  # DESCRIPTION_FIELDS
    delegations: tuple[tuple[bytes, int], ...] = ()  # (delegator, amount)
    beacon_commitment: bytes = b""  # 32-byte hash-onion tip, or b"": none

    @property
    def name(self) -> str:
        return self.description[0]


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: int
    timestamp: int
    params: Params
    alloc: dict[bytes, GenesisAccount]
    validators: tuple[GenesisValidator, ...]
    extra_data: bytes = b""

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "timestamp": self.timestamp,
            "extra_data": "0x" + self.extra_data.hex(),
            "params": {k: str(v) for k, v in self.params.to_json().items()},
            "alloc": {
                "0x" + address.hex(): _account_json(account)
                for address, account in sorted(self.alloc.items())
            },
            "validators": [_validator_json(v) for v in self.validators],
        }


def _validator_json(v: GenesisValidator) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": "0x" + v.address.hex(),
        "pub_key": "0x" + v.pub_key.hex(),
        "max_amount": str(v.max_amount),
        "comp_rate": str(v.comp_rate),
    }
    out.update(zip(DESCRIPTION_FIELDS, v.description, strict=True))
    if v.delegations:
        out["delegations"] = [
            {"address": "0x" + a.hex(), "amount": str(amount)} for a, amount in v.delegations
        ]
    if v.beacon_commitment:
        out["beacon_commitment"] = "0x" + v.beacon_commitment.hex()
    return out


def parse_comp_rate(value: Any, field_name: str) -> int:
    """A comp rate: a decimal fraction string ``"0.2"`` or an 18-decimal fixed-point integer."""
    if isinstance(value, str) and "." in value:
        whole, _, frac = value.strip().partition(".")
        if whole in ("0", "1", "") and frac.isdigit() and len(frac) <= 18:
            rate = int(whole or "0") * WAD + int(frac.ljust(18, "0"))
            if rate <= WAD:
                return rate
        raise GenesisError(f"{field_name}: expected a fraction between 0 and 1, got {value!r}")
    return _ranged(value, field_name, WAD)


def _account_json(account: GenesisAccount) -> dict[str, Any]:
    out: dict[str, Any] = {"balance": str(account.balance)}
    if account.nonce:
        out["nonce"] = account.nonce
    if account.code:
        out["code"] = "0x" + account.code.hex()
    if account.storage:
        out["storage"] = {hex(k): hex(v) for k, v in sorted(account.storage.items())}
    return out


def parse_address(value: Any, field_name: str) -> bytes:
    if not isinstance(value, str) or not _ADDRESS_RE.match(value):
        raise GenesisError(
            f"{field_name}: expected a 0x-prefixed 20-byte hex address, got {value!r}"
        )
    return bytes.fromhex(value[2:])


def parse_hex_bytes(value: Any, field_name: str) -> bytes:
    if not isinstance(value, str) or not _HEX_RE.match(value):
        raise GenesisError(f"{field_name}: expected 0x-prefixed hex bytes, got {value!r}")
    return bytes.fromhex(value[2:])


def _ranged(value: Any, field_name: str, high: int, low: int = 0) -> int:
    number = parse_int(value, field_name)
    if not low <= number <= high:
        raise GenesisError(f"{field_name}: {number} is out of range [{low}, {high}]")
    return number


def _parse_account(address_text: str, data: Any) -> GenesisAccount:
    where = f"alloc.{address_text}"
    if not isinstance(data, dict):
        raise GenesisError(f"{where}: expected an object")
    unknown = set(data) - {"balance", "nonce", "code", "storage"}
    if unknown:
        raise GenesisError(f"{where}.{sorted(unknown)[0]}: unknown field")
    storage_raw = data.get("storage", {})
    if not isinstance(storage_raw, dict):
        raise GenesisError(f"{where}.storage: expected an object of slot -> value")
    storage = {
        _ranged(slot, f"{where}.storage key {slot!r}", MAX_UINT256): _ranged(
            value, f"{where}.storage[{slot}]", MAX_UINT256
        )
        for slot, value in storage_raw.items()
    }
    return GenesisAccount(
        balance=_ranged(data.get("balance", 0), f"{where}.balance", MAX_UINT256),
        nonce=_ranged(data.get("nonce", 0), f"{where}.nonce", MAX_UINT64 - 1),
        code=parse_hex_bytes(data.get("code", "0x"), f"{where}.code"),
        storage=storage,
    )


def _parse_validator(index: int, data: Any) -> GenesisValidator:
    where = f"validators[{index}]"
    if not isinstance(data, dict):
        raise GenesisError(f"{where}: expected an object")
    known = {
        "address",
        "pub_key",
        "max_amount",
        "comp_rate",
        "delegations",
        "beacon_commitment",
        *DESCRIPTION_FIELDS,
    }
    unknown = set(data) - known
    if unknown:
        raise GenesisError(f"{where}.{sorted(unknown)[0]}: unknown field")
    address = parse_address(data.get("address"), f"{where}.address")
    pub_key = parse_hex_bytes(data.get("pub_key", "0x"), f"{where}.pub_key")
    if len(pub_key) != 32:
        raise GenesisError(
            f"{where}.pub_key: an Ed25519 public key has 32 bytes, got {len(pub_key)}"
        )
    description = []
    for name in DESCRIPTION_FIELDS:
        text = data.get(name, "")
        if not isinstance(text, str):
            raise GenesisError(f"{where}.{name}: expected a string")
        description.append(text)
    if "max_amount" not in data:
        raise GenesisError(f"{where}.max_amount: missing")
    delegations_raw = data.get("delegations", [])
    if not isinstance(delegations_raw, list):
        raise GenesisError(f"{where}.delegations: expected a list")
    delegations = []
    for i, item in enumerate(delegations_raw):
        at = f"{where}.delegations[{i}]"
        if not isinstance(item, dict) or set(item) - {"address", "amount"}:
            raise GenesisError(f"{at}: expected an object with address and amount")
        amount = _ranged(item.get("amount", 0), f"{at}.amount", 2**128, low=1)
        delegations.append((parse_address(item.get("address"), f"{at}.address"), amount))
    beacon_commitment = b""
    if "beacon_commitment" in data:
        at = f"{where}.beacon_commitment"
        beacon_commitment = parse_hex_bytes(data["beacon_commitment"], at)
        if len(beacon_commitment) != 32 or beacon_commitment == bytes(32):
            raise GenesisError(f"{at}: expected 32 non-zero bytes, got 0x{beacon_commitment.hex()}")
    return GenesisValidator(
        address=address,
        pub_key=pub_key,
        max_amount=_ranged(data["max_amount"], f"{where}.max_amount", 2**128, low=1),
        comp_rate=parse_comp_rate(data.get("comp_rate", "0.2"), f"{where}.comp_rate"),
        description=tuple(description),  # type: ignore[arg-type]
        delegations=tuple(delegations),
        beacon_commitment=beacon_commitment,
    )


def parse_genesis(data: Any) -> Genesis:
    """Validate a decoded genesis JSON document.

    Raises
    ------
    GenesisError
        naming the first invalid field.
    """
    if not isinstance(data, dict):
        raise GenesisError("genesis: expected a JSON object")
    unknown = set(data) - KNOWN_FIELDS
    if unknown:
        raise GenesisError(f"{sorted(unknown)[0]}: unknown genesis field")
    if "chain_id" not in data:
        raise GenesisError("chain_id: missing")
    chain_id = _ranged(data["chain_id"], "chain_id", 2**53 - 1, low=1)
    alloc_raw = data.get("alloc", {})
    if not isinstance(alloc_raw, dict):
        raise GenesisError("alloc: expected an object of address -> account")
    alloc: dict[bytes, GenesisAccount] = {}
    for address_text, account in alloc_raw.items():
        address = parse_address(address_text, f"alloc key {address_text!r}")
        if address in alloc:
            raise GenesisError(f"alloc.{address_text}: duplicate address")
        alloc[address] = _parse_account(address_text, account)
    alloc.setdefault(
        bytes(HISTORY_STORAGE_ADDRESS), GenesisAccount(nonce=1, code=HISTORY_STORAGE_CONTRACT_CODE)
    )
    validators_raw = data.get("validators", [])
    if not isinstance(validators_raw, list):
        raise GenesisError("validators: expected a list")
    validators = tuple(_parse_validator(i, v) for i, v in enumerate(validators_raw))
    if len({v.address for v in validators}) != len(validators):
        raise GenesisError("validators: duplicate validator address")
    if len({v.pub_key for v in validators}) != len(validators):
        raise GenesisError("validators: duplicate pub_key")
    extra = parse_hex_bytes(data.get("extra_data", "0x"), "extra_data")
    if len(extra) > 32:
        raise GenesisError(f"extra_data: at most 32 bytes, got {len(extra)}")
    return Genesis(
        chain_id=chain_id,
        timestamp=_ranged(data.get("timestamp", 0), "timestamp", MAX_UINT64),
        params=parse_params(data.get("params")),
        alloc=alloc,
        validators=validators,
        extra_data=extra,
    )


def load_genesis(path: str | Path) -> Genesis:
    """Read and validate a genesis file; errors name the file and the field."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise GenesisError(f"cannot read genesis file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenesisError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    return parse_genesis(data)


def write_genesis(genesis: Genesis, path: str | Path) -> None:
    Path(path).write_text(json.dumps(genesis.to_json(), indent=2) + "\n")
