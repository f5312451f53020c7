"""Fixtures for the RPC tests.

``node``: an automining dev node (chain id 1234) in a temp dir, funding ``rpc_harness.KEYS``;
``server``: its RPC server on a free loopback port, in an asyncio loop on a background thread;
``w3``: a web3.py HTTP client; ``post``: raw HTTP POSTs; ``call``: a raw JSON-RPC call;
``check_schema``: validates a result against the method's result schema in the execution-apis
OpenRPC document (draft 2019-09, ``$ref``s resolved through a ``referencing`` registry).
Each test module gets its own node and server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT201909
from rpc_harness import SPEC_PATH, SPEC_URI, HttpReply, ServerThread, http, make_node
from web3 import HTTPProvider, Web3

from cybermiles.node.node import Node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    node = make_node(tmp_path_factory.mktemp("rpc-node"))
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def server(node: Node) -> Iterator[ServerThread]:
    server = ServerThread(node)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def w3(server: ServerThread) -> Web3:
    return Web3(HTTPProvider(server.url, request_kwargs={"timeout": 30}))


@pytest.fixture(scope="module")
def post(server: ServerThread) -> Callable[..., HttpReply]:
    def send(body: Any, **kwargs: Any) -> HttpReply:
        return http(server.url, body, **kwargs)

    return send


@pytest.fixture(scope="module")
def call(post: Callable[..., HttpReply]) -> Callable[..., Any]:
    """``call(method, *params)`` -> the raw JSON result; fails the test on an error reply."""

    def send(method: str, *params: Any) -> Any:
        reply = post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        assert reply.status == 200, reply.body
        doc = reply.json()
        assert "error" not in doc, doc
        return doc["result"]

    return send


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        pytest.skip(f"execution-apis spec not found at {SPEC_PATH}")
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture(scope="session")
def check_schema(spec: dict[str, Any]) -> Callable[[str, Any], None]:
    """``check_schema(method, result)`` validates against the method's result schema."""
    resource = Resource.from_contents(spec, default_specification=DRAFT201909)
    registry: Registry = Registry().with_resource(SPEC_URI, resource)
    index = {m["name"]: i for i, m in enumerate(spec["methods"])}

    def check(method: str, result: Any) -> None:
        schema = {"$ref": f"{SPEC_URI}#/methods/{index[method]}/result/schema"}
        validator = jsonschema.Draft201909Validator(schema, registry=registry)
        errors = sorted(validator.iter_errors(result), key=lambda e: e.path)
        assert not errors, f"{method}: " + "; ".join(
            f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors
        )

    return check


@pytest.fixture(scope="session")
def check_component(spec: dict[str, Any]) -> Callable[[str, Any], None]:
    """``check_component(name, value)`` validates against ``components/schemas/<name>``."""
    resource = Resource.from_contents(spec, default_specification=DRAFT201909)
    registry: Registry = Registry().with_resource(SPEC_URI, resource)

    def check(name: str, value: Any) -> None:
        schema = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
        validator = jsonschema.Draft201909Validator(schema, registry=registry)
        errors = list(validator.iter_errors(value))
        assert not errors, f"{name}: " + "; ".join(e.message[:300] for e in errors)

    return check
