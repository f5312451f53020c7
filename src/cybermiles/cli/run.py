"""Running a node in the foreground until Ctrl-C / SIGTERM, with the RPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from cybermiles.node.node import Node

log = logging.getLogger("cybermiles.cli")


def run_node(node: Node, *, on_started: Callable[[str], None] | None = None) -> None:
    """Start the node and its RPC server; block until interrupted, then shut down cleanly."""
    asyncio.run(_serve(node, on_started))


async def _serve(node: Node, on_started: Callable[[str], None] | None) -> None:
    from cybermiles.rpc.server import bound_port, start_rpc_server  # aiohttp only when serving

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    node.start()
    rpc = node.config.rpc
    runner = await start_rpc_server(node, rpc.addr, rpc.port)
    url = f"http://{rpc.addr}:{bound_port(runner)}"
    if on_started is not None:
        on_started(url)
    log.info("JSON-RPC (HTTP and WebSocket) listening on %s", url)
    try:
        while not stop.is_set():
            if node.producer.error is not None:
                log.error("stopping: the block producer failed: %s", node.producer.error)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
    finally:
        log.info("shutting down")
        await runner.cleanup()
        node.stop()
        log.info("stopped cleanly")
