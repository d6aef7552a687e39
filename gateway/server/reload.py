"""Live configuration: re-read the YAML (on POST /reload or when the file changes) and
apply what can change without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config.loader import ConfigError, load_config
from gateway.config.schema import GatewayConfig
from gateway.pipeline import Gateway

log = logging.getLogger("agent_gateway.reload")

# Applied live; the other top-level sections are read once at start.
LIVE_SECTIONS = ("agents", "routes", "policies", "workflows", "checks", "evaluations", "server")
RESTART_SECTIONS = ("listeners", "admin", "security", "state", "bus", "triggers", "telemetry")
# Applied live by the part of the server that registers an applier for it (`appliers`), else at a restart.
APPLIED_BY_OTHERS = ("mcp",)

# Applies a new config's section; returns the closer of what it replaced.
Applier = Callable[[GatewayConfig], Callable[[], Awaitable[None]]]


@dataclass
class ReloadOutcome:
    changed: bool
    applied: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class ConfigReloader:
    def __init__(
        self,
        path: str | Path,
        gateway: Gateway,
        drain_timeout: float,
        overrides: Mapping[tuple[str, ...], Any] | None = None,
    ) -> None:
        self.path = Path(path)
        # What the command line set over the file (``--workers``): a reload keeps it.
        self.overrides = overrides
        self.gateway = gateway
        self.drain_timeout = drain_timeout
        self.digest = self._digest()
        self.task: asyncio.Task[None] | None = None
        self._closers: dict[asyncio.Task[None], Callable[[], Awaitable[None]]] = {}
        self._lock = asyncio.Lock()
        # By section (one of APPLIED_BY_OTHERS): run after the gateway took the new config, so on its plan.
        self.appliers: dict[str, Applier] = {}

    def _digest(self) -> str:
        # The content, not the mtime: Kubernetes swaps ConfigMap files through symlinks.
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return ""

    async def reload(self) -> ReloadOutcome:
        async with self._lock:
            digest = self._digest()
            try:
                config = load_config(self.path, overrides=self.overrides)
            except ConfigError as exc:
                log.error("config reload refused, keeping the running config:\n%s", exc)
                return ReloadOutcome(False, problems=[str(p) for p in exc.problems])
            outcome = self._apply(config)
            self.digest = digest
            return outcome

    def _apply(self, config: GatewayConfig) -> ReloadOutcome:
        current = self.gateway.config
        live = (*LIVE_SECTIONS, *self.appliers)
        needs_restart = (*RESTART_SECTIONS, *(s for s in APPLIED_BY_OTHERS if s not in self.appliers))
        applied = [s for s in live if getattr(config, s) != getattr(current, s)]
        restart = [s for s in needs_restart if getattr(config, s) != getattr(current, s)]
        if restart:
            log.warning("config sections %s changed: they apply at the next restart", ", ".join(restart))
        if not applied:
            return ReloadOutcome(False, needs_restart=restart)
        # Keep the sections that need a restart as they run, so what is served stays coherent.
        kept = config.model_copy(update={s: getattr(current, s) for s in needs_restart})
        try:
            close_old = self.gateway.reload(kept)
        except Exception as exc:  # an adapter refused its new options: keep the old config
            log.exception("config reload failed, keeping the running config")
            return ReloadOutcome(False, problems=[f"{type(exc).__name__}: {exc}"])
        self._close_later(close_old)
        problems: list[str] = []
        for section in applied:
            if section in self.appliers:
                try:
                    self._close_later(self.appliers[section](kept))
                except Exception as exc:  # the rest is applied: say what was not
                    log.exception("config reload: the %s section was not applied", section)
                    problems.append(f"{section}: {type(exc).__name__}: {exc}")
        log.info("config reloaded from %s: %s", self.path, ", ".join(applied))
        return ReloadOutcome(True, applied, restart, problems)

    def _close_later(self, close_old: Callable[[], Awaitable[None]]) -> None:
        async def later() -> None:
            await asyncio.sleep(self.drain_timeout)  # calls on the old chains finish first
            await close_old()

        task = asyncio.get_running_loop().create_task(later())
        self._closers[task] = close_old
        task.add_done_callback(lambda done: self._closers.pop(done, None))

    async def _watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self._digest() not in (self.digest, ""):
                await self.reload()

    def start(self, interval: float | None) -> None:
        if interval is not None:
            self.task = asyncio.get_running_loop().create_task(self._watch(interval))

    async def stop(self) -> None:
        """Stop watching; close the adapters of replaced configs now instead of later."""
        pending = dict(self._closers)
        for task in (self.task, *pending):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for close_old in pending.values():
            await close_old()
