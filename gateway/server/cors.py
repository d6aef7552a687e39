"""CORS for browser callers (the Fetch standard): preflights answered here, allowed origins marked on answers.

Hand-written rather than aiohttp-cors, which registers per route and cannot serve the passthrough's
any-method route; the rules are few and tested against the standard's cases.
"""

from __future__ import annotations

from aiohttp import web

from gateway.config.schema import Cors
from gateway.model import PermissionDenied


class CorsRules:
    """One listener's CORS answers."""

    def __init__(self, config: Cors) -> None:
        self.config = config
        self.any_origin = "*" in config.allow_origins
        self.origins = frozenset(config.allow_origins)
        self.methods = frozenset(m.upper() for m in config.allow_methods)
        self.headers = frozenset(h.lower() for h in config.allow_headers)
        self.expose = ", ".join(config.expose_headers)

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    def _origin_headers(self, origin: str) -> dict[str, str]:
        echo = not self.any_origin or self.config.allow_credentials
        headers = {"access-control-allow-origin": origin if echo else "*"}
        if echo:
            headers["vary"] = "Origin"
        if self.config.allow_credentials:
            headers["access-control-allow-credentials"] = "true"
        return headers

    def preflight(self, request: web.Request, origin: str) -> web.Response:
        """The answer to ``OPTIONS`` with ``Access-Control-Request-Method``; PermissionDenied when refused."""
        method = request.headers.get("access-control-request-method", "").upper()
        asked = [h.strip().lower() for h in request.headers.get("access-control-request-headers", "").split(",")]
        asked = [h for h in asked if h]
        if not self.allows(origin):
            raise PermissionDenied(f"origin {origin!r} may not call this gateway (listeners.http.cors.allow_origins)")
        if method not in self.methods:
            raise PermissionDenied(f"method {method!r} is not allowed cross-origin (listeners.http.cors.allow_methods)")
        if refused := [h for h in asked if h not in self.headers]:
            raise PermissionDenied(
                f"headers {refused} are not allowed cross-origin (listeners.http.cors.allow_headers)"
            )
        headers = {
            **self._origin_headers(origin),
            "access-control-allow-methods": ", ".join(sorted(self.methods)),
            "access-control-max-age": str(int(self.config.max_age)),
        }
        if asked:
            headers["access-control-allow-headers"] = ", ".join(asked)
        headers["vary"] = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        return web.Response(status=204, headers=headers)

    def answer_headers(self, origin: str) -> dict[str, str]:
        """The headers that let the page read an answer (and the exposed ones); none for an origin not allowed."""
        if not self.allows(origin):
            return {}
        headers = self._origin_headers(origin)
        if self.expose:
            headers["access-control-expose-headers"] = self.expose
        return headers

    def mark(self, origin: str, response: web.StreamResponse) -> None:
        response.headers.update(self.answer_headers(origin))


def is_preflight(request: web.Request) -> bool:
    return (
        request.method == "OPTIONS"
        and "origin" in request.headers
        and "access-control-request-method" in request.headers
    )
