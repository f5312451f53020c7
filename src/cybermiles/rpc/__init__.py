"""The JSON-RPC server (HTTP + WebSocket on one port) and the Ethereum method set.

Public entry points::

    start_rpc_server(node, host, port) -> aiohttp.web.AppRunner   serve a started Node
    bound_port(runner) -> int                                     the port actually bound
    make_app(node, config=None) -> aiohttp.web.Application        for aiohttp test utilities

Modules: ``server`` (transport), ``dispatch`` (JSON-RPC 2.0), ``registry`` (method table),
``errors`` (codes), ``params`` (argument parsing), ``format`` (result shapes), ``lookup`` and
``views`` (reading the chain), ``session`` (a connection), ``methods/`` (one file per namespace).
"""

from cybermiles.rpc.server import bound_port, make_app, start_rpc_server

__all__ = ["bound_port", "make_app", "start_rpc_server"]
