"""The admin listener: liveness, readiness, Prometheus metrics, the running config,
circuit breakers (with manual reset) and live reload. Keep it off public networks."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.config.schema import AdminListener
from gateway.pipeline import Gateway
from gateway.server.reload import ConfigReloader
from gateway.telemetry.logging import redacted


class AdminApi:
    def __init__(
        self,
        gateway: Gateway,
        listener: AdminListener,
        serving: Callable[[], bool],
        reloader: ConfigReloader | None,
    ) -> None:
        self.gateway = gateway
        self.listener = listener
        self.serving = serving
        self.reloader = reloader

    async def livez(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def _breakers(self) -> dict[str, str]:
        return {owner: breaker.state for owner, breaker in self.gateway.policies.breakers.items()}

    async def readyz(self, request: web.Request) -> web.Response:
        """Not ready while starting or draining, or while a required agent's breaker is open."""
        breakers = self._breakers()
        blocked = [a for a in self.listener.ready_requires if breakers.get(f"agent/{a}") == "open"]
        ready = self.serving() and not blocked
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", "breakers": breakers}
        if not self.serving():
            body["reason"] = "not serving (starting or draining)"
        elif blocked:
            body["reason"] = f"circuit open for required agents: {', '.join(blocked)}"
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        payload = generate_latest(self.gateway.metrics.registry)
        return web.Response(body=payload, headers={"content-type": CONTENT_TYPE_LATEST})

    async def config(self, request: web.Request) -> web.Response:
        """The running routes, agents, policies and workflows (secrets masked)."""
        config = self.gateway.config
        sections = ("agents", "routes", "policies", "workflows", "checks", "evaluations", "server")
        dumped = config.model_dump(mode="json", include=set(sections))
        return web.json_response(redacted(dumped, config.telemetry.logging.redact))

    async def breakers(self, request: web.Request) -> web.Response:
        return web.json_response(self._breakers())

    async def reset_breaker(self, request: web.Request) -> web.Response:
        owner = f"{request.match_info['kind']}/{request.match_info['name']}"
        breaker = self.gateway.policies.breakers.get(owner)
        if breaker is None:
            known = ", ".join(sorted(self.gateway.policies.breakers)) or "none"
            return web.json_response({"error": f"no circuit breaker {owner!r} (known: {known})"}, status=404)
        breaker.reset()
        return web.json_response({owner: breaker.state})

    async def reload(self, request: web.Request) -> web.Response:
        if self.reloader is None:
            return web.json_response(
                {"error": "this gateway was started without a config file; nothing to reload"}, status=409
            )
        outcome = await self.reloader.reload()
        body = {
            "changed": outcome.changed,
            "applied": outcome.applied,
            "needsRestart": outcome.needs_restart,
            "problems": outcome.problems,
        }
        return web.json_response(body, status=400 if outcome.problems else 200)


OPEN_PATHS = frozenset({"/livez", "/readyz", "/metrics"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_middleware(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            presented = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(presented, expected):
                return web.json_response(
                    {"error": "the admin API needs Authorization: Bearer <admin.token>"},
                    status=401,
                    headers={"www-authenticate": 'Bearer realm="agent-gateway admin"'},
                )
        return await handler(request)

    return check


def build_admin_app(api: AdminApi) -> web.Application:
    token = api.listener.token
    app = web.Application(middlewares=[token_middleware(token)] if token else [])
    app.router.add_get("/livez", api.livez)
    app.router.add_get("/readyz", api.readyz)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/config", api.config)
    app.router.add_get("/breakers", api.breakers)
    app.router.add_post("/breakers/{kind}/{name}/reset", api.reset_breaker)
    app.router.add_post("/reload", api.reload)
    return app
