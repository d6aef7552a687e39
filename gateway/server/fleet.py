"""The supervising process of ``agent-gateway run --workers N``: the workers, the admin
listener over them, and the signals that stop them all."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web

from gateway import __version__
from gateway.config.schema import GatewayConfig
from gateway.config.workers import worker_caveats
from gateway.server.connections import ListenError, protocol_log
from gateway.server.fleet_admin import FleetAdmin
from gateway.server.ports import join_address, split_address
from gateway.server.supervisor import Supervisor, WorkerStartError

log = logging.getLogger("agent_gateway")


async def _start_admin(admin: FleetAdmin, address: str) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(admin.app(), access_log=None, handle_signals=False, logger=protocol_log())
    await runner.setup()
    host, port = split_address(address)
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError.from_os_error(address, exc) from None
    bound = runner.addresses[0]
    return runner, join_address(bound[0], bound[1])


async def serve_fleet(config: GatewayConfig, path: str, log_level: str | None) -> int:
    """Run the workers until SIGTERM or SIGINT; the process's exit code."""
    if not sys.platform.startswith("linux"):
        print("agent-gateway: server.workers above 1 needs Linux (SO_REUSEPORT spreads connections)", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for caveat in worker_caveats(config):
        log.warning("server.workers: %s", caveat)
    supervisor = Supervisor(config, path, log_level)
    admin = FleetAdmin(supervisor, config.admin) if config.admin is not None else None
    runner: web.AppRunner | None = None
    try:
        try:
            await supervisor.start()
            admin_address = None
            if admin is not None and config.admin is not None:
                runner, admin_address = await _start_admin(admin, config.admin.address)
        except WorkerStartError as exc:
            print(f"agent-gateway: {exc}", file=sys.stderr)
            return exc.code
        except ListenError as exc:
            print(f"agent-gateway: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"agent-gateway: cannot start the workers: {exc}", file=sys.stderr)
            return 1
        print(
            f"agent-gateway {__version__} ready: http={supervisor.http} grpc={supervisor.grpc} "
            f"admin={admin_address} workers={supervisor.count}",
            flush=True,
        )
        await stop.wait()
        log.info("shutting down: draining %d workers", supervisor.count)
    finally:
        await supervisor.stop()
        if runner is not None:
            await runner.cleanup()
        if admin is not None:
            await admin.close()
    return supervisor.exit_code()
