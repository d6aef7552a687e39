"""Fetching a JWKS from a URL with bounds: PyJWKClient reads the whole reply with no size
limit, each socket read under its own timeout (so a trickle is never cut off), on the thread
that asked, which for the gateway is the event loop. This client reads at most
``MAX_JWKS_BYTES``, gives up once ``JWKS_FETCH_SECONDS`` have passed (checked between reads,
each read waiting at most as long again), and follows no redirects."""

from __future__ import annotations

import http.client
import json
import time
import urllib.request
from typing import Any
from urllib.error import HTTPError, URLError

import jwt

MAX_JWKS_BYTES = 1024 * 1024
# A JWKS fetch stalls the callers being authenticated: it gets this long in all.
JWKS_FETCH_SECONDS = 5.0
_CHUNK = 64 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class BoundedJwkClient(jwt.PyJWKClient):
    """A :class:`jwt.PyJWKClient` whose fetch is bounded in size and in total time."""

    def __init__(self, uri: str, *, lifespan: float = 300) -> None:
        super().__init__(uri, cache_keys=True, lifespan=lifespan, timeout=JWKS_FETCH_SECONDS)

    def fetch_data(self) -> Any:
        deadline = time.monotonic() + JWKS_FETCH_SECONDS
        opener = urllib.request.build_opener(_NoRedirects())
        try:
            with opener.open(urllib.request.Request(self.uri, headers=self.headers), timeout=self.timeout) as reply:
                declared = reply.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > MAX_JWKS_BYTES:
                    raise jwt.PyJWKClientConnectionError(f"the JWKS is over {MAX_JWKS_BYTES} bytes")
                body = bytearray()
                while chunk := reply.read1(_CHUNK):
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise jwt.PyJWKClientConnectionError(f"the JWKS is over {MAX_JWKS_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise jwt.PyJWKClientConnectionError(f"the JWKS took over {JWKS_FETCH_SECONDS} s")
        except (URLError, TimeoutError, OSError, http.client.HTTPException) as exc:
            if isinstance(exc, HTTPError):
                exc.close()
            raise jwt.PyJWKClientConnectionError(f"cannot fetch the JWKS: {exc}") from exc
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise jwt.PyJWKClientError("the JWKS is not JSON") from exc
        if self.jwk_set_cache is not None:
            self.jwk_set_cache.put(data)
        # What PyJWKClient's own fetch records: unknown kids refresh at most once per cooldown.
        self._last_successful_fetch = time.monotonic()
        return data
