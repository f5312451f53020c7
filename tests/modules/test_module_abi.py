"""The Python method tables of the native modules equal the compiled Solidity interfaces.

``contracts/build/IStaking.json`` and ``IGovernance.json`` are the ABIs wallets and contracts
use (``contracts/build.mjs`` compiles ``contracts/interfaces/*.sol``). Every function there must
be a ``@method`` of the module with the same selector, argument and return types and
mutability, and the other way round; every event a module emits must be declared there.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode
from eth_utils import event_signature_to_log_topic, function_signature_to_4byte_selector

from cybermiles.modules.addresses import GOVERNANCE, STAKING
from cybermiles.modules.framework.module import MethodSpec, Module, event_topic
from cybermiles.modules.governance.module import GovernanceModule
from cybermiles.modules.registry import modules
from cybermiles.modules.staking.module import StakingModule

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "contracts" / "build"
PACKAGES = ROOT / "src" / "cybermiles" / "modules"

CASES = [
    pytest.param(StakingModule, "IStaking", STAKING, "staking", id="staking"),
    pytest.param(GovernanceModule, "IGovernance", GOVERNANCE, "governance", id="governance"),
]


def abi(name: str) -> list[dict[str, Any]]:
    return json.loads((BUILD / f"{name}.json").read_text())["abi"]


def canonical(param: dict[str, Any]) -> str:
    """The canonical ABI type of an ABI parameter (tuples expanded, arrays kept)."""
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(canonical(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def abi_signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(canonical(p) for p in entry['inputs'])})"


def functions(name: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in abi(name) if e["type"] == "function"}


def events(name: str) -> dict[str, dict[str, Any]]:
    return {abi_signature(e): e for e in abi(name) if e["type"] == "event"}


def spec_by_name(module: type[Module]) -> dict[str, MethodSpec]:
    return {spec.signature.split("(", 1)[0]: spec for spec in module.methods().values()}


def mutability(spec: MethodSpec) -> str:
    return "payable" if spec.payable else "view" if spec.view else "nonpayable"


_EVENT_SIGNATURE = re.compile(r"^[A-Z][A-Za-z0-9_]*\(([a-z0-9\[\](),]*)\)$")


def emitted_event_signatures(package: str) -> set[str]:
    """Every string literal of the module's package that is an event signature
    (``CapitalizedName(types)``): what the module passes to ``CallContext.emit``."""
    found: set[str] = set()
    for path in sorted((PACKAGES / package).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _EVENT_SIGNATURE.match(node.value)
            ):
                found.add(node.value)
    return found


def test_interface_artifacts_are_abi_only() -> None:
    for name in ("IStaking", "IGovernance"):
        artifact = json.loads((BUILD / f"{name}.json").read_text())
        assert artifact["contractName"] == name
        assert artifact["sourceName"] == f"interfaces/{name}.sol"
        assert "bytecode" not in artifact
        assert artifact["abi"], name


def test_registry_holds_both_modules_at_their_addresses() -> None:
    by_address = {m.address: type(m) for m in modules()}
    assert by_address == {STAKING: StakingModule, GOVERNANCE: GovernanceModule}


@pytest.mark.parametrize(("module", "interface", "address", "package"), CASES)
def test_same_function_names(
    module: type[Module], interface: str, address: bytes, package: str
) -> None:
    assert module.address == address
    assert set(spec_by_name(module)) == set(functions(interface))
    # no overloads on either side: a name is one function
    assert len(module.methods()) == len(functions(interface))


@pytest.mark.parametrize(("module", "interface", "address", "package"), CASES)
def test_every_function_matches(
    module: type[Module], interface: str, address: bytes, package: str
) -> None:
    specs = spec_by_name(module)
    for name, entry in functions(interface).items():
        spec = specs[name]
        signature = abi_signature(entry)
        assert spec.signature == signature, name
        assert spec.selector == function_signature_to_4byte_selector(signature), name
        assert spec.inputs == tuple(canonical(p) for p in entry["inputs"]), name
        assert spec.outputs == tuple(canonical(p) for p in entry["outputs"]), name
        assert mutability(spec) == entry["stateMutability"], name
        assert spec.gas > 0, name


@pytest.mark.parametrize(("module", "interface", "address", "package"), CASES)
def test_calldata_encodes_with_the_abi_types(
    module: type[Module], interface: str, address: bytes, package: str
) -> None:
    """``Module.calldata`` uses the selector Solidity computes (the Description tuple too)."""
    for name, entry in functions(interface).items():
        types = [canonical(p) for p in entry["inputs"]]
        args = [_sample(t) for t in types]
        data = module.calldata(name, *args)
        assert data[:4] == function_signature_to_4byte_selector(abi_signature(entry))
        assert list(decode(types, data[4:])) == [
            _normalised(t, a) for t, a in zip(types, args, strict=True)
        ]


@pytest.mark.parametrize(("module", "interface", "address", "package"), CASES)
def test_emitted_events_are_declared(
    module: type[Module], interface: str, address: bytes, package: str
) -> None:
    declared = events(interface)
    used = emitted_event_signatures(package)
    assert used, f"no event signature found in modules/{package}"
    assert used <= set(declared), sorted(used - set(declared))
    # and the interface declares no event the module never emits
    assert set(declared) <= used, sorted(set(declared) - used)
    for signature in used:
        assert event_topic(signature) == int.from_bytes(
            event_signature_to_log_topic(signature), "big"
        )


def test_description_tuple_is_the_struct() -> None:
    entry = functions("IStaking")["declareCandidacy"]
    description = entry["inputs"][3]
    assert description["internalType"] == "struct IStaking.Description"
    assert [c["name"] for c in description["components"]] == [
        "name",
        "website",
        "location",
        "email",
        "profile",
    ]
    spec = spec_by_name(StakingModule)["declareCandidacy"]
    assert spec.inputs[3] == "(string,string,string,string,string)"


def _sample(kind: str) -> Any:
    if kind.startswith("("):
        inner = kind[1:-1].split(",")
        return tuple(_sample(t) for t in inner)
    if kind == "address":
        return "0x" + "ab" * 20
    if kind == "bool":
        return True
    if kind == "string":
        return "text"
    if kind.startswith("bytes"):
        return b"\x11" * int(kind[5:] or 3)
    if kind.startswith(("uint", "int")):
        return 7
    raise AssertionError(f"no sample for {kind}")


def _normalised(kind: str, value: Any) -> Any:
    if kind.startswith("("):
        return tuple(_normalised(t, v) for t, v in zip(kind[1:-1].split(","), value, strict=True))
    if kind == "address":
        return value.lower()
    return value
