"""``agent-gateway run`` with ``server.workers`` > 1: one supervising process, N workers.

The supervisor reserves the listeners' ports (:mod:`gateway.server.ports`), starts each
worker as a fresh interpreter (``python -m gateway.server.worker``: nothing of the
supervisor's loop or sockets is inherited, unlike a fork), and waits until every one
is serving. A worker that dies is started again, at once when it had run a while,
with a doubling delay (up to 30 s) when it keeps dying young. SIGTERM or SIGINT is
passed on to every worker, which drains like a single gateway
(``server.drain_timeout``); one still running well after that is killed. The
supervisor serves the admin listener itself (:mod:`gateway.server.fleet_admin`), so
metrics and health outlive any one worker.

The supervisor imports no gateway runtime (no adapters, stores or fronts): it stays
small, and a bug there cannot take it down with a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field

from gateway.config.schema import GatewayConfig
from gateway.server.ports import PortReservation
from gateway.telemetry.metrics_merge import FleetMetrics

log = logging.getLogger("agent_gateway")

# A worker must print its ready line within this long of its start.
START_TIMEOUT = 60.0
# A worker that ran this long before it exited is restarted at once; one dying sooner waits.
STABLE_AFTER = 10.0
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 30.0
# Beyond the drain timeout and the answer time: the worker's own shutdown, then SIGKILL.
STOP_MARGIN = 5.0
ANSWER_TIME = 0.5  # as gateway.server.app's


class WorkerStartError(Exception):
    """A worker did not come up at start (its own message is on stderr); ``code`` is its exit code."""

    def __init__(self, index: int, code: int | None) -> None:
        what = f"exited with code {code}" if code is not None else f"was not serving within {START_TIMEOUT:g}s"
        super().__init__(f"worker {index} {what} while starting")
        self.code = code if code is not None and code > 0 else 1  # killed by a signal: 1


@dataclass
class WorkerSlot:
    """One worker's place: the process in it now, and its history."""

    index: int
    admin_socket: str
    process: asyncio.subprocess.Process | None = None
    pid: int | None = None
    serving: bool = False  # printed its ready line and has not exited
    started_at: float = 0.0  # time.time() of the current process's start
    restarts: int = 0
    last_exit: int | None = None
    young_exits: int = 0  # exits in a row, each before STABLE_AFTER
    _relay: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    """Starts, watches and stops the workers of one gateway."""

    def __init__(self, config: GatewayConfig, config_path: str, log_level: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.log_level = log_level
        self.count = config.server.workers
        self.stopping = False
        self.serving = False
        self.metrics = FleetMetrics()
        self.http: str | None = None
        self.grpc: str | None = None
        self._reservations: list[PortReservation] = []
        self._dir = tempfile.mkdtemp(prefix="agw-workers-")  # 0700: the workers' admin sockets
        self.slots = [WorkerSlot(i, os.path.join(self._dir, f"worker-{i}.sock")) for i in range(self.count)]
        self._keepers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Reserve the ports, start every worker, return when all serve (ListenError or
        WorkerStartError otherwise; call :meth:`stop` then)."""
        listeners = self.config.listeners
        if listeners.http is not None:
            self._reservations.append(reservation := PortReservation(listeners.http.address))
            self.http = reservation.address
        if listeners.grpc is not None:
            self._reservations.append(reservation := PortReservation(listeners.grpc.address))
            self.grpc = reservation.address
        codes = await asyncio.gather(*(self._spawn(slot) for slot in self.slots))
        for slot, code in zip(self.slots, codes, strict=True):
            if not slot.serving:
                raise WorkerStartError(slot.index, code)
        self.serving = True
        self._keepers = [asyncio.create_task(self._keep(slot)) for slot in self.slots]

    def _argv(self, slot: WorkerSlot) -> list[str]:
        argv = [sys.executable, "-m", "gateway.server.worker", "-c", self.config_path]
        argv += ["--index", str(slot.index), "--workers", str(self.count), "--admin-socket", slot.admin_socket]
        if self.http is not None:
            argv += ["--http", self.http]
        if self.grpc is not None:
            argv += ["--grpc", self.grpc]
        if self.log_level is not None:
            argv += ["--log-level", self.log_level]
        return argv

    async def _spawn(self, slot: WorkerSlot) -> int | None:
        """Start a worker in ``slot`` and wait for its ready line; the exit code when it
        ended before (None: serving, or not ready in time and killed)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(slot.admin_socket)  # a dead worker's socket file
        process = await asyncio.create_subprocess_exec(
            *self._argv(slot), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        slot.process, slot.pid, slot.started_at = process, process.pid, time.time()
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            log.error("worker %d (pid %d) not serving within %gs: killing it", slot.index, process.pid, START_TIMEOUT)
            process.kill()
            line = b""
        if not line:
            return await process.wait()
        slot.serving = True
        slot._relay = asyncio.create_task(_relay(process.stdout))
        log.info("worker %d serving (pid %d)", slot.index, process.pid)
        return None

    async def _keep(self, slot: WorkerSlot) -> None:
        """Restart the worker of ``slot`` whenever it exits, until the gateway stops."""
        while not self.stopping:
            process = slot.process
            assert process is not None
            code = await process.wait()
            self._exited(slot, code)
            if self.stopping:
                return
            ran = time.time() - slot.started_at
            slot.young_exits = slot.young_exits + 1 if ran < STABLE_AFTER else 0
            delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (slot.young_exits - 1)) if slot.young_exits else 0.0
            log.warning(
                "worker %d (pid %d) exited with code %s after %.1fs; starting it again%s",
                slot.index,
                process.pid,
                code,
                ran,
                f" in {delay:g}s" if delay else "",
            )
            if delay:
                await asyncio.sleep(delay)
            if self.stopping:
                return
            slot.restarts += 1
            try:
                await self._spawn(slot)
            except OSError as exc:  # no process could be started (out of file descriptors, memory)
                log.error("worker %d could not be started: %s", slot.index, exc)
                slot.started_at = time.time()  # counts as dying young: the next try waits

    def _exited(self, slot: WorkerSlot, code: int) -> None:
        slot.serving = False
        slot.last_exit = code
        if slot.pid is not None:
            self.metrics.retire(slot.pid)

    async def stop(self) -> None:
        """Pass SIGTERM to every worker, wait for their drains, kill what is left."""
        self.stopping = True
        self.serving = False
        running = [s.process for s in self.slots if s.process is not None and s.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        grace = self.config.server.drain_timeout + ANSWER_TIME + STOP_MARGIN
        if running:
            _, late = await asyncio.wait([asyncio.create_task(p.wait()) for p in running], timeout=grace)
            if late:
                log.error("%d worker(s) still running %gs after SIGTERM: killing them", len(late), grace)
                for process in running:
                    if process.returncode is None:
                        with contextlib.suppress(ProcessLookupError):
                            process.kill()
                await asyncio.wait([asyncio.create_task(p.wait()) for p in running], timeout=5.0)
        for task in self._keepers:
            task.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        for slot in self.slots:
            if slot.process is not None and slot.process.stdin is not None:
                slot.process.stdin.close()
            if slot._relay is not None:
                await asyncio.gather(slot._relay, return_exceptions=True)
        for reservation in self._reservations:
            reservation.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def exit_code(self) -> int:
        """0 when every worker drained cleanly, else 1."""
        codes = [s.process.returncode for s in self.slots if s.process is not None]
        return 0 if all(code == 0 for code in codes) else 1


async def _relay(stream: asyncio.StreamReader) -> None:
    """What a worker writes on stdout after its ready line goes to the supervisor's."""
    while line := await stream.readline():
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
