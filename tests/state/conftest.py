"""One store fixture, parametrized over both backends: the same suite runs on each."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.state.redis import RedisStateStore
from gateway.state.sqlite import SqliteStateStore
from gateway.state.store import Scope, StateLimits, StateStore

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


@pytest.fixture(params=["sqlite", "redis"])
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """``await store_factory(limits=..., default_ttl=...)``: an open store of the backend under test.

    SQLite stores share one file per test (so a second store is a restart); Redis
    stores share one unique key prefix per test, removed afterwards.
    """
    backend: str = request.param
    if backend == "redis" and not await redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set CI=true to make this a failure)")
    prefix = f"agw-test:{uuid.uuid4().hex}:"
    opened: list[StateStore] = []

    async def make(limits: StateLimits | None = None, default_ttl: dict[Scope, float] | None = None) -> StateStore:
        store: StateStore
        if backend == "sqlite":
            store = SqliteStateStore(tmp_path / "state.db", limits, default_ttl)
        else:
            store = RedisStateStore(REDIS_URL, limits, default_ttl, key_prefix=prefix)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    if backend == "redis":
        await drop_prefix(prefix)


@pytest.fixture
async def store(store_factory: StoreFactory) -> StateStore:
    return await store_factory()
