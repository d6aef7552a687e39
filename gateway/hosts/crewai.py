"""Serve your own CrewAI crew over the kickoff API that deployed crews expose (CrewAI AMP).

Open-source CrewAI ships no HTTP server; deployed crews answer ``GET /inputs``,
``POST /kickoff`` and ``GET /status/{kickoff_id}``. This host gives any Crew that
API in one line, so the gateway's ``crewai`` adapter (and CrewAI's own
``InvokeCrewAIAutomationTool``) can call it::

    from gateway.hosts.crewai import serve_crew
    serve_crew(my_crew, "127.0.0.1", 8000)          # or a zero-argument factory returning a Crew

Each kickoff runs on a fresh copy of the crew (a Crew is not re-entrant) in a
worker thread. The status answer carries both shapes seen in the wild:
``status: running|completed|error`` (the AMP reference) and
``state: RUNNING|SUCCESS|FAILED`` (what CrewAI's client reads). While a crew
runs, :func:`kickoff_context` tells its code (an LLM, a tool) which kickoff it
serves and the trace and id headers of the request that started it.

crewai is imported lazily and is not a dependency of agent-gateway; this module
imports nothing else of the gateway.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# Request headers a crew may want to see (trace context and the gateway's ids).
CONTEXT_HEADERS = ("traceparent", "tracestate", "baggage", "x-request-id", "x-session-id", "x-thread-id", "x-user-id")
MAX_FINISHED_RUNS = 1000

CrewSource = Any  # a crewai.Crew, or a zero-argument callable returning a fresh one


@dataclass(frozen=True)
class KickoffContext:
    """What a running crew may know about the kickoff it serves."""

    kickoff_id: str
    inputs: Mapping[str, Any]
    meta: Mapping[str, Any]
    headers: Mapping[str, str]


_current: contextvars.ContextVar[KickoffContext | None] = contextvars.ContextVar("crewai_kickoff", default=None)


def kickoff_context() -> KickoffContext | None:
    """The kickoff the calling crew code is running for (None outside a kickoff)."""
    return _current.get()


@dataclass
class _Run:
    crew: Any
    started: float = field(default_factory=time.monotonic)
    state: str = "running"
    output: str = ""
    tasks: list[dict[str, Any]] = field(default_factory=list)
    # CrewOutput.token_usage (prompt_tokens, completion_tokens, ...), when the crew's LLMs reported it.
    token_usage: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    finished: float | None = None
    worker: asyncio.Task[None] | None = None

    def execution_time(self) -> float:
        return round((self.finished or time.monotonic()) - self.started, 3)

    def status(self) -> dict[str, Any]:
        if self.state == "completed":
            return {
                "status": "completed",
                "state": "SUCCESS",
                "result": {"output": self.output, "tasks": self.tasks, "token_usage": self.token_usage},
                "execution_time": self.execution_time(),
            }
        if self.state == "error":
            return {"status": "error", "state": "FAILED", "error": self.error, "execution_time": self.execution_time()}
        tasks = list(self.crew.tasks)
        done = sum(1 for task in tasks if task.output is not None)
        current = next((task for task in tasks if task.output is None), None)
        body: dict[str, Any] = {
            "status": "running",
            "state": "RUNNING",
            "progress": {"completed_tasks": done, "total_tasks": len(tasks)},
        }
        if current is not None:
            body["current_task"] = current.name or str(current.id)
        return body


def _crew_factory(source: CrewSource) -> Callable[[], Any]:
    try:
        from crewai import Crew  # optional dependency: only hosts need it
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("serving a crew needs crewai installed (pip install crewai)") from exc
    if isinstance(source, Crew):
        template = source
        return lambda: template.copy()
    if callable(source):
        return source  # type: ignore[no-any-return]
    raise TypeError(f"expected a crewai.Crew or a factory returning one, got {type(source).__name__}")


def _error(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, "message": message, **extra}, status=status)


def build_app(crew: CrewSource, *, bearer_token: str = "") -> web.Application:
    """The kickoff API around ``crew`` as an aiohttp application (for embedding or tests)."""
    new_crew = _crew_factory(crew)
    runs: dict[str, _Run] = {}
    required_inputs = sorted(new_crew().fetch_inputs())

    @web.middleware
    async def auth(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if bearer_token and request.path != "/health":
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), bearer_token.encode()):
                return _error(401, "Unauthorized", "Invalid or missing bearer token")
        response: web.StreamResponse = await handler(request)
        return response

    async def inputs(request: web.Request) -> web.Response:
        return web.json_response({"inputs": required_inputs})

    async def kickoff(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Bad Request", 'the body must be JSON: {"inputs": {...}}')
        given = body.get("inputs", {}) if isinstance(body, dict) else None
        meta = body.get("meta") if isinstance(body, dict) else None
        if not isinstance(given, dict) or not isinstance(meta, dict | None):
            return _error(400, "Bad Request", "'inputs' (and 'meta' when given) must be JSON objects")
        missing = [name for name in required_inputs if name not in given]
        if missing:
            return _error(422, "Validation Error", "Missing required inputs", details={"missing_inputs": missing})
        kickoff_id = str(uuid.uuid4())
        run = runs[kickoff_id] = _Run(new_crew())
        headers = {name: request.headers[name] for name in CONTEXT_HEADERS if name in request.headers}
        context = KickoffContext(kickoff_id, dict(given), dict(meta or {}), headers)
        run.worker = asyncio.create_task(_execute(run, context))
        _forget_old(runs)
        return web.json_response({"kickoff_id": kickoff_id})

    async def status(request: web.Request) -> web.Response:
        kickoff_id = request.match_info["kickoff_id"]
        run = runs.get(kickoff_id)
        if run is None:
            return _error(404, "Execution not found", f"No execution found with ID: {kickoff_id}")
        return web.json_response(run.status())

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def stop_workers(app: web.Application) -> None:
        # Threads cannot be interrupted; the asyncio side is cancelled so shutdown is clean.
        for run in runs.values():
            if run.worker is not None:
                run.worker.cancel()

    app = web.Application(middlewares=[auth])
    app.router.add_get("/health", health)
    app.router.add_get("/inputs", inputs)
    app.router.add_post("/kickoff", kickoff)
    app.router.add_get("/status/{kickoff_id}", status)
    app.router.add_get("/{kickoff_id}/status", status)  # the path older AMP docs show
    app.on_shutdown.append(stop_workers)
    return app


async def _execute(run: _Run, context: KickoffContext) -> None:
    def work() -> Any:
        _current.set(context)
        return run.crew.kickoff(inputs=dict(context.inputs))

    try:
        # Sync kickoff refuses to run inside an event loop: give it a thread (the context var travels along).
        output = await asyncio.to_thread(work)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # any crew failure is reported through /status
        run.state, run.error = "error", f"{type(exc).__name__}: {exc}"
    else:
        run.state, run.output = "completed", str(output.raw)
        run.tasks = [
            {"task_id": task.name or task.description[:40], "agent": task.agent, "output": task.raw}
            for task in output.tasks_output
        ]
        usage = getattr(output, "token_usage", None)
        if usage is not None and hasattr(usage, "model_dump"):
            run.token_usage = usage.model_dump()
    finally:
        run.finished = time.monotonic()


def _forget_old(runs: dict[str, _Run]) -> None:
    finished = [key for key, run in runs.items() if run.finished is not None]
    for key in finished[: max(0, len(finished) - MAX_FINISHED_RUNS)]:
        del runs[key]


def serve_crew(crew: CrewSource, host: str = "127.0.0.1", port: int = 8000, *, bearer_token: str = "") -> None:
    """Serve ``crew`` (a Crew or a factory) over the kickoff API until interrupted."""
    web.run_app(build_app(crew, bearer_token=bearer_token), host=host, port=port, access_log=None, print=None)
