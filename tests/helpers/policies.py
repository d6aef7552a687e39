"""Driving one policy in tests: an invocation, a flaky next handler, a stream of events."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from gateway.model import (
    Event,
    Invocation,
    Message,
    Options,
    Result,
    Role,
    TextPart,
)


def invocation(idempotent: bool = True) -> Invocation:
    return Invocation("agent", (Message(Role.USER, (TextPart("hi"),)),), options=Options(idempotent=idempotent))


class Flaky:
    """Fails with the given errors, in order, then succeeds; counts attempts."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.attempts: list[int] = []

    async def __call__(self, invocation: Invocation) -> Result:
        self.attempts.append(invocation.attempt)
        if self.errors:
            raise self.errors.pop(0)
        return Result("agent", (Message(Role.AGENT, (TextPart("ok"),)),))


def stream_of(*items: Event | Exception) -> AsyncIterator[Event]:
    async def events() -> AsyncIterator[Event]:
        for item in items:
            if isinstance(item, Exception):
                raise item
            yield item

    return events()


def redis_url() -> str:
    import redis

    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("Redis is not running at 127.0.0.1:6379 (needed for the shared breaker)")
    return url
