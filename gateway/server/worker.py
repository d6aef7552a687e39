"""One worker process of ``agent-gateway run --workers N`` (started by the supervisor,
:mod:`gateway.server.supervisor`; not a command for people).

A worker is a whole gateway: it loads the config file itself (so it can watch and
reload it like a single gateway), listens on the ports the supervisor reserved
(SO_REUSEPORT) and serves its admin API on a private Unix socket. When it is up it
prints one JSON line on stdout. SIGTERM or SIGINT drains it (``server.drain_timeout``);
so does the end of its stdin, which is a pipe from the supervisor: a worker never
outlives its supervisor, even one killed with SIGKILL.

Exit codes, as ``agent-gateway run``'s: 0 after a drain, 1 when a listener cannot be
opened, 2 for an invalid config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.server.loop import event_loop_factory
from gateway.server.ports import WorkerBinding
from gateway.telemetry.logging import configure_logging

log = logging.getLogger("agent_gateway")


def _watch_lifeline(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop when stdin (the supervisor's pipe) ends: the supervisor has gone."""
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            if not stop.is_set():
                log.warning("the supervisor has gone: draining and exiting")
            stop.set()

    loop.add_reader(fd, readable)


async def serve_worker(config: GatewayConfig, path: str, index: int, binding: WorkerBinding) -> None:
    from gateway.server.app import GatewayServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    _watch_lifeline(loop, stop)
    server = GatewayServer(config, config_path=path, worker=binding)
    try:
        addresses = await server.start()
    except BaseException:
        await server.stop()
        raise
    ready = {"worker": index, "pid": os.getpid(), "http": addresses.http, "grpc": addresses.grpc}
    print(json.dumps(ready), flush=True)
    try:
        await stop.wait()
        log.info("worker %d shutting down: draining in-flight calls", index)
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.server.worker")
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--http")
    parser.add_argument("--grpc")
    parser.add_argument("--admin-socket", required=True)
    parser.add_argument("--log-level")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, overrides={("server", "workers"): args.workers})
    except ConfigError as exc:
        # The supervisor checked the file at start; this is a file changed since (a restart reads it anew).
        print(f"agent-gateway worker {args.index}: invalid config:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    configure_logging(config.telemetry.logging, args.log_level)
    from gateway.server.connections import ListenError

    binding = WorkerBinding(args.http, args.grpc, args.admin_socket)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve_worker(config, args.config, args.index, binding))
    except ListenError as exc:
        print(f"agent-gateway worker {args.index}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
