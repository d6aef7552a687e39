"""Both upstream clients side by side: aiohttp's ClientSession and the lean HTTP/1.1 client,
each behind ``HttpTransport.open``, read through the same bounded reader and error mapping."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from gateway.http1 import Http1Client
from gateway.model import Attempt, Context, GatewayError, Invocation, Message, UpstreamTls
from gateway.transport import HttpTransport, lean_transports, mapped_errors, read_body

# Headers each client adds on its own (aiohttp: compression and its name; lean: its name).
AUTO_HEADERS = frozenset({"user-agent", "accept-encoding"})


def call_with(timeout: float | None = None) -> Attempt:
    deadline = None if timeout is None else time.monotonic() + timeout
    return Attempt(Invocation("agent", (Message.user("hi"),), Context(deadline=deadline)), {"x-request-id": "r-1"})


@dataclass(frozen=True)
class Outcome:
    """What a caller of the transport sees: the reply (status, headers, body) or the model error."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: tuple[str, bool, str] | None = None


@dataclass
class Clients:
    session: aiohttp.ClientSession
    lean: Http1Client

    def transports(self, base: str, tls: UpstreamTls | None = None) -> tuple[HttpTransport, HttpTransport]:
        """(aiohttp's, the lean one) for ``base``."""
        return (
            HttpTransport(self.session, "agent", base, tls=tls),
            lean_transports(self.lean)(self.session, "agent", base, tls=tls),
        )

    async def both(
        self,
        base: str,
        method: str = "POST",
        path: str = "/invoke",
        body: Any = None,
        *,
        limit: int = 1 << 20,
        truncate: bool = False,
        timeout: float | None = 5.0,
        tls: UpstreamTls | None = None,
        keep: tuple[str, ...] = ("content-type", "content-length", "x-upstream"),
    ) -> tuple[Outcome, Outcome]:
        """The same request through both clients, in turn."""
        outcomes = []
        for transport in self.transports(base, tls):
            outcomes.append(await exchange(transport, method, path, body, limit, truncate, timeout, keep))
        return outcomes[0], outcomes[1]


async def exchange(
    transport: HttpTransport,
    method: str,
    path: str,
    body: Any,
    limit: int,
    truncate: bool,
    timeout: float | None,
    keep: tuple[str, ...],
) -> Outcome:
    call = call_with(timeout)
    try:
        with mapped_errors("agent"):
            async with transport.open(call, method, transport.url(path), body, {"x-trace": "t-1"}) as response:
                raw = await read_body(response, limit, "agent", truncate=truncate)
                kept = {k: response.headers[k] for k in keep if k in response.headers}
                return Outcome(response.status, kept, raw)
    except GatewayError as exc:
        # The client's own exception class is named at the end of some messages: the rest must match.
        message = _CLIENT_CLASS.sub(": <client exception>", exc.message)
        return Outcome(error=(type(exc).__name__, bool(getattr(exc, "reached", True)), message))


_CLIENT_CLASS = re.compile(
    r": (Client\w+Error|ServerDisconnectedError|ConnectionLost|IncompleteBody|ResponseMalformed)$"
)


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    lean = Http1Client()
    async with aiohttp.ClientSession() as session:
        yield Clients(session, lean)
    await lean.close()
