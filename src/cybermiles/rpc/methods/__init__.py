"""The JSON-RPC method set: one ``MethodTable`` per namespace module, merged here.

Adding a namespace: write ``rpc/methods/<ns>.py`` with ``methods = MethodTable()`` and
``@methods.method("<ns>_name")`` handlers ``(node, *params)``, then list it in
:func:`build_methods` (dev-only namespaces go behind ``node.dev``).
"""

from __future__ import annotations

from typing import Any

from cybermiles.rpc.methods import (
    accounts,
    call,
    cmt,
    dev,
    eth,
    fees,
    logs,
    net,
    proof,
    txpool,
    web3,
)
from cybermiles.rpc.registry import MethodTable


def build_methods(node: Any) -> MethodTable:
    """Every method ``node`` serves (dev methods on dev nodes; elsewhere they refuse, -32601)."""
    table = MethodTable()
    for module in (eth, net, web3, logs, fees, txpool, call, accounts, proof, cmt):
        table.update(module.methods)
    table.update(dev.methods if node.dev else dev.refusals)
    return table


__all__ = ["build_methods"]
