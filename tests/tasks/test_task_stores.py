"""Both A2A task stores (SQLite, Redis) hold the same contract: owner-scoped listing newest
first with filters, cursor pages and totals; push configs; survival across reopening."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway.model import InvalidRequest
from gateway.tasks.redis import RedisTaskStore
from gateway.tasks.sqlite import SqliteTaskStore
from gateway.tasks.store import COMPLETED, WORKING, TaskQuery, TaskRecord, TaskStore
from tests.helpers.redis import REDIS_URL, drop_prefix, redis_available

StoreFactory = Callable[[], Awaitable[TaskStore]]


@pytest.fixture(params=["sqlite", "redis"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    if request.param == "redis" and not await redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set CI=true to make this a failure)")
    prefix = f"agw-test-tasks:{uuid.uuid4().hex}:"
    opened: list[TaskStore] = []

    async def make() -> TaskStore:
        store: TaskStore
        if request.param == "redis":
            store = RedisTaskStore(REDIS_URL, 3600, key_prefix=prefix)
        else:
            store = SqliteTaskStore(tmp_path / "tasks.db", 3600)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    if request.param == "redis":
        await drop_prefix(prefix)


def record(index: int, owner: str = "alice", context: str = "c1", state: str = COMPLETED) -> TaskRecord:
    return TaskRecord(f"t-{index:03d}", owner, "echo", context, state=state, updated_at=1000.0 + index)


async def test_listing_is_owner_scoped_filtered_paged_and_newest_first(make_store: StoreFactory) -> None:
    store = await make_store()
    for i in range(7):
        await store.save(record(i, context="c1" if i % 2 else "c2", state=WORKING if i == 3 else COMPLETED))
    await store.save(record(50, owner="bob"))
    await store.save(dataclasses.replace(record(60), agent="other"))
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        page = await store.list(TaskQuery("alice", "echo", page_size=3, cursor=cursor))
        assert page.total == 7
        seen += [t.task_id for t in page.tasks]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == [f"t-{i:03d}" for i in range(6, -1, -1)]
    by_context = await store.list(TaskQuery("alice", "echo", context_id="c1"))
    assert [t.task_id for t in by_context.tasks] == ["t-005", "t-003", "t-001"] and by_context.total == 3
    working = await store.list(TaskQuery("alice", "echo", state=WORKING))
    assert [t.task_id for t in working.tasks] == ["t-003"]
    recent = await store.list(TaskQuery("alice", "echo", updated_after=1004.0))
    assert [t.task_id for t in recent.tasks] == ["t-006", "t-005"]
    assert [t.task_id for t in (await store.list(TaskQuery("bob", "echo"))).tasks] == ["t-050"]
    with pytest.raises(InvalidRequest):
        await store.list(TaskQuery("alice", "echo", cursor="not-a-cursor"))


async def test_a_task_moves_up_when_its_status_changes_and_survives_reopening(make_store: StoreFactory) -> None:
    store = await make_store()
    for i in range(3):
        await store.save(record(i))
    await store.save(dataclasses.replace(record(0), updated_at=2000.0, state=WORKING))
    assert [t.task_id for t in (await store.list(TaskQuery("alice", "echo"))).tasks] == ["t-000", "t-002", "t-001"]
    await store.save_push_config("t-000", "p1", {"id": "p1", "url": "http://127.0.0.1:1/a"})
    await store.save_push_config("t-000", "p2", {"id": "p2", "url": "http://127.0.0.1:1/b"})
    await store.delete_push_config("t-000", "p1")
    await store.delete_push_config("t-000", "p1")  # idempotent
    again = await make_store()
    got = await again.get("t-000")
    assert got is not None and got.state == WORKING and got.owner == "alice"
    assert [c for _, c in await again.push_configs("t-000")] == [{"id": "p2", "url": "http://127.0.0.1:1/b"}]
    assert await again.get("t-999") is None
