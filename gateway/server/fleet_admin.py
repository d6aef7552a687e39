"""The admin listener of a gateway of several workers, served by the supervisor.

It answers the same paths as a single gateway's (:mod:`gateway.server.admin`), from
every worker's private admin socket:

- ``/livez``: the supervisor is alive (it restarts workers itself, so one worker down
  is no reason to restart the pod);
- ``/readyz``: ready only while every worker is serving and ready (each worker's own
  readiness: listeners up, required breakers closed), each worker's status in the body;
- ``/metrics``: every worker's metrics added up (:mod:`gateway.telemetry.metrics_merge`),
  and the supervisor's own (``agw_workers``, ``agw_workers_serving``, ``agw_worker_restarts_total``);
- ``/workers``: each worker's index, pid, state, restarts, calls handled and in flight;
- ``/breakers`` (the worst state of each breaker over the workers), breaker resets and
  ``/reload`` go to every worker; ``/config`` is any worker's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway.config.schema import AdminListener
from gateway.server.admin import token_middleware
from gateway.server.supervisor import Supervisor, WorkerSlot
from gateway.telemetry.metrics_merge import MergedCollector, Scrape

# One question to a worker's admin socket; a worker slower than this counts as not answering.
WORKER_TIMEOUT = 2.0
BREAKER_ORDER = {"closed": 0, "half-open": 1, "open": 2}

Answer = tuple[int, bytes]  # status (0: no answer) and body


class SupervisorCollector(Collector):
    """The supervisor's own metrics, read from its worker slots."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        slots = self.supervisor.slots
        yield GaugeMetricFamily("agw_workers", "Worker processes configured (server.workers).", len(slots))
        yield GaugeMetricFamily("agw_workers_serving", "Worker processes serving now.", sum(s.serving for s in slots))
        restarts = CounterMetricFamily("agw_worker_restarts", "Workers started again after exiting.", labels=["worker"])
        for slot in slots:
            restarts.add_metric([str(slot.index)], slot.restarts)
        yield restarts


def _worst(states: list[dict[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for breakers in states:
        for owner, state in breakers.items():
            if BREAKER_ORDER.get(state, 3) > BREAKER_ORDER.get(out.get(owner, "closed"), 3) or owner not in out:
                out[owner] = state
    return out


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


class FleetAdmin:
    """The admin API over every worker of ``supervisor``."""

    def __init__(self, supervisor: Supervisor, listener: AdminListener) -> None:
        self.supervisor = supervisor
        self.listener = listener
        self._sessions: dict[int, aiohttp.ClientSession] = {}

    def _session(self, slot: WorkerSlot) -> aiohttp.ClientSession:
        session = self._sessions.get(slot.index)
        if session is None:
            connector = aiohttp.UnixConnector(path=slot.admin_socket)
            timeout = aiohttp.ClientTimeout(total=WORKER_TIMEOUT)
            session = self._sessions[slot.index] = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()

    async def _ask(self, slot: WorkerSlot, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        if not slot.serving:
            return 0, b""
        try:
            async with self._session(slot).request(method, f"http://worker{path}", headers=headers) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return 0, b""

    async def _ask_all(self, method: str, path: str, request: web.Request | None = None) -> list[Answer]:
        headers = {}
        if request is not None and "authorization" in request.headers:
            headers["authorization"] = request.headers["authorization"]
        slots = self.supervisor.slots
        return list(await asyncio.gather(*(self._ask(slot, method, path, headers) for slot in slots)))

    async def livez(self, request: web.Request) -> web.Response:
        serving = sum(s.serving for s in self.supervisor.slots)
        return web.json_response({"status": "ok", "workers": len(self.supervisor.slots), "serving": serving})

    async def readyz(self, request: web.Request) -> web.Response:
        answers = await self._ask_all("GET", "/readyz")
        workers, breakers = [], []
        for slot, (status, raw) in zip(self.supervisor.slots, answers, strict=True):
            entry: dict[str, Any] = {"worker": slot.index, "pid": slot.pid}
            found = _json(raw)
            if status == 0:
                entry["status"] = "starting" if slot.process and slot.process.returncode is None else "down"
            else:
                entry["status"] = "ready" if status == 200 else "not ready"
                if isinstance(found, dict):
                    if "reason" in found:
                        entry["reason"] = found["reason"]
                    if isinstance(found.get("breakers"), dict):
                        breakers.append(found["breakers"])
            workers.append(entry)
        ready = self.supervisor.serving and all(w["status"] == "ready" for w in workers)
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", "breakers": _worst(breakers)}
        if not self.supervisor.serving:
            body["reason"] = "not serving (starting or draining)"
        elif not ready:
            body["reason"] = "not every worker is ready: " + ", ".join(
                f"worker {w['worker']} {w['status']}" for w in workers if w["status"] != "ready"
            )
        body["workers"] = workers
        return web.json_response(body, status=200 if ready else 503)

    async def _scrape(self) -> None:
        answers = await self._ask_all("GET", "/metrics")
        for slot, (status, body) in zip(self.supervisor.slots, answers, strict=True):
            if status == 200 and slot.pid is not None:
                self.supervisor.metrics.scraped(slot.pid, body.decode())

    def _live_pids(self) -> list[int]:
        return [s.pid for s in self.supervisor.slots if s.serving and s.pid is not None]

    async def metrics(self, request: web.Request) -> web.Response:
        await self._scrape()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(MergedCollector(self.supervisor.metrics.merged(self._live_pids())))
        registry.register(SupervisorCollector(self.supervisor))
        return web.Response(body=generate_latest(registry), headers={"content-type": CONTENT_TYPE_LATEST})

    async def workers(self, request: web.Request) -> web.Response:
        """Each worker: index, pid, serving, restarts, last exit code, calls handled and in flight."""
        await self._scrape()
        out = []
        for slot in self.supervisor.slots:
            scrape = self.supervisor.metrics.last(slot.pid) if slot.pid is not None and slot.serving else None
            out.append(
                {
                    "worker": slot.index,
                    "pid": slot.pid,
                    "serving": slot.serving,
                    "startedAt": slot.started_at,
                    "restarts": slot.restarts,
                    "lastExitCode": slot.last_exit,
                    "requests": _total(scrape, "agw_requests", "agw_requests_total"),
                    "inFlight": _total(scrape, "agw_requests_in_flight", "agw_requests_in_flight"),
                }
            )
        return web.json_response({"workers": out})

    async def config(self, request: web.Request) -> web.Response:
        for status, body in await self._ask_all("GET", "/config", request):
            if status:
                return web.Response(body=body, status=status, content_type="application/json")
        return web.json_response({"error": "no worker is serving"}, status=503)

    def _breaker_states(self, answers: list[Answer]) -> list[dict[str, str]]:
        return [found for status, body in answers if status == 200 and isinstance(found := _json(body), dict)]

    async def breakers(self, request: web.Request) -> web.Response:
        answers = await self._ask_all("GET", "/breakers", request)
        if not any(status == 200 for status, _ in answers):
            return _first_failure(answers)
        return web.json_response(_worst(self._breaker_states(answers)))

    async def reset_breaker(self, request: web.Request) -> web.Response:
        answers = await self._ask_all("POST", request.path, request)
        if not any(status == 200 for status, _ in answers):
            return _first_failure(answers)
        return web.json_response(_worst(self._breaker_states(answers)))

    async def reload(self, request: web.Request) -> web.Response:
        answers = await self._ask_all("POST", "/reload", request)
        outcomes = [(status, _json(body)) for status, body in answers if status]
        if not outcomes:
            return _first_failure(answers)
        bodies = [found for _, found in outcomes if isinstance(found, dict)]
        status = 400 if any(s == 400 for s, _ in outcomes) else max(s for s, _ in outcomes)
        merged: dict[str, Any] = {
            "changed": any(b.get("changed") for b in bodies),
            "applied": sorted({a for b in bodies for a in b.get("applied", [])}),
            "needsRestart": sorted({a for b in bodies for a in b.get("needsRestart", [])}),
            "problems": next((b["problems"] for b in bodies if b.get("problems")), []),
            "workers": len(outcomes),
        }
        if any("error" in b for b in bodies) and status >= 400:
            merged["error"] = next(b["error"] for b in bodies if "error" in b)
        return web.json_response(merged, status=status)

    def app(self) -> web.Application:
        token = self.listener.token
        app = web.Application(middlewares=[token_middleware(token)] if token else [])
        routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("GET", "/livez", self.livez),
            ("GET", "/readyz", self.readyz),
            ("GET", "/metrics", self.metrics),
            ("GET", "/workers", self.workers),
            ("GET", "/config", self.config),
            ("GET", "/breakers", self.breakers),
            ("POST", "/breakers/{kind}/{name}/reset", self.reset_breaker),
            ("POST", "/reload", self.reload),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        return app


def _total(scrape: Scrape | None, family: str, sample: str) -> int | None:
    """The sum of one sample's values over its labels in a worker's last scrape."""
    found = scrape.get(family) if scrape is not None else None
    if found is None:
        return None if scrape is None else 0
    return int(sum(value for (name, _), value in found.samples.items() if name == sample))


def _first_failure(answers: list[Answer]) -> web.Response:
    for status, body in answers:
        if status:
            return web.Response(body=body, status=status, content_type="application/json")
    return web.json_response({"error": "no worker is serving; retry shortly"}, status=503)
