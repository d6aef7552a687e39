"""The Redis server of the tests (REDIS_URL), whether it answers, and cleaning a key prefix; the state stores' factory type."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from gateway.state.store import StateStore

REDIS_URL = os.environ.get("AGW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


StoreFactory = Callable[..., Awaitable[StateStore]]


async def redis_available(url: str = REDIS_URL) -> bool:
    """True when Redis answers; under CI=true an absent Redis fails the test instead."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        await client.ping()
        return True
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required under CI=true but {url} did not answer: {exc}")
        return False
    finally:
        await client.aclose()


async def drop_prefix(prefix: str, url: str = REDIS_URL) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
