"""web3_* methods: the client version string and Keccak-256."""

from __future__ import annotations

import platform
from typing import Any

from cybermiles import __version__
from cybermiles.crypto.keccak import keccak256
from cybermiles.rpc import format as fmt
from cybermiles.rpc import params as p
from cybermiles.rpc.registry import MethodTable

CLIENT_VERSION = f"cybermiles/v{__version__}/python{platform.python_version()}"

methods = MethodTable()


@methods.method("web3_clientVersion")
def client_version(node: Any) -> str:
    return CLIENT_VERSION


@methods.method("web3_sha3")
def sha3(node: Any, data: Any) -> str:
    return fmt.data(keccak256(p.data(data, "data")))
