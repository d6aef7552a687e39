"""One store fixture, parametrized over both backends: the same suite runs on each."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.state.redis import RedisStateStore
from gateway.state.sqlite import SqliteStateStore
from gateway.state.store import Scope, StateLimits, StateStore
from tests.helpers.redis import REDIS_URL, StoreFactory, drop_prefix, redis_available


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
