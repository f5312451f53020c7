"""Running a node in the foreground until Ctrl-C / SIGTERM, with the RPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable

from cybermiles.node.blockchain import UpgradeRequired
from cybermiles.node.node import Node

log = logging.getLogger("cybermiles.cli")


UPGRADE_EXIT_CODE = 3  # stopped for a governance upgrade: install the new version
# How long a thread may keep the interpreter lock while others wait for it (Python's default:
# 5 ms). Building a block is long CPU work; forcing a hand-over to an RPC thread every 5 ms
# costs more in cache misses than it gains in latency (plain transfers over RPC: ~+9%).
SWITCH_INTERVAL = 0.02


def run_node(node: Node, *, on_started: Callable[[str], None] | None = None) -> None:
    """Start the node and its RPC server; block until interrupted, then shut down cleanly.

    Exits with status 1 when the block producer fails, and with ``UPGRADE_EXIT_CODE`` when a
    passed upgrade proposal reserves the next block for another version (the message names it).
    """
    try:
        node.chain.check_upgrade(node.chain.head.block_number + 1)
    except UpgradeRequired as exc:
        node.stop()
        log.error("%s", exc)
        raise SystemExit(UPGRADE_EXIT_CODE) from None
    sys.setswitchinterval(SWITCH_INTERVAL)
    asyncio.run(_serve(node, on_started))
    error = node.error
    if isinstance(error, UpgradeRequired):
        raise SystemExit(UPGRADE_EXIT_CODE)
    if error is not None:
        raise SystemExit(1)


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
            error = node.error
            if isinstance(error, UpgradeRequired):
                log.error("stopping: %s", error)
                break
            if error is not None:
                log.error("stopping: the block producer failed: %s", error)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
    finally:
        log.info("shutting down")
        await runner.cleanup()
        node.stop()
        log.info("stopped cleanly")
