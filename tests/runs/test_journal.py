"""The workflow journal on both backends: steps once, leases taken over by one gateway, waits kept."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.runs.journal import JournaledRun, WorkflowJournal
from gateway.runs.journal_redis import RedisWorkflowJournal
from gateway.runs.journal_sqlite import SqliteWorkflowJournal
from tests.helpers.redis import REDIS_URL, drop_prefix, redis_available


@pytest.fixture(params=["sqlite", "redis"])
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[WorkflowJournal]:
    prefix = f"agw-test:{uuid.uuid4().hex}:"
    store: WorkflowJournal
    if request.param == "redis":
        if not await redis_available():
            pytest.skip(f"Redis is not reachable at {REDIS_URL} (set CI=true to make this a failure)")
        store = RedisWorkflowJournal(REDIS_URL, key_prefix=prefix)
    else:
        store = SqliteWorkflowJournal(tmp_path / "state.db")
    await store.open()
    yield store
    await store.close()
    if request.param == "redis":
        await drop_prefix(prefix)


async def test_a_lapsed_run_is_taken_over_by_one_gateway(journal: WorkflowJournal) -> None:
    await journal.begin(JournaledRun("r1", "order", {"agent": "order"}, "gw-a"), lease=0.2)
    await journal.record_step("r1", "reserve", {"ok": {"text": "A"}})
    await journal.record_step("r1", "reserve", {"ok": {"text": "B"}})  # a second record is ignored
    assert await journal.steps("r1") == {"reserve": {"ok": {"text": "A"}}}
    assert await journal.claim_lapsed("gw-b", lease=5) == []  # still leased
    await asyncio.sleep(0.35)
    taken = await asyncio.gather(journal.claim_lapsed("gw-b", lease=5), journal.claim_lapsed("gw-c", lease=5))
    assert sorted(len(t) for t in taken) == [0, 1]  # one gateway only
    winner = next(t for t in taken if t)[0]
    assert winner.run_id == "r1" and winner.invocation == {"agent": "order"}
    await journal.renew(["r1"], "gw-a", lease=5)  # the dead gateway's renewal changes nothing
    await journal.release(["r1"], winner.gateway_id)
    again = await journal.claim_lapsed("gw-d", lease=5)
    assert [r.run_id for r in again] == ["r1"]
    await journal.finish("r1", {"ok": {"text": "done"}})
    finished = await journal.get("r1")
    assert finished is not None and finished.finished and finished.outcome == {"ok": {"text": "done"}}
    await journal.release(["r1"], "gw-d")
    assert await journal.claim_lapsed("gw-e", lease=5) == []  # a finished run is never taken


async def test_a_pending_wait_keeps_its_first_record(journal: WorkflowJournal) -> None:
    assert await journal.get_wait("r2", "approve") is None
    first = await journal.put_wait("r2", "approve", {"digest": "d1", "expires_at": 1.0})
    again = await journal.put_wait("r2", "approve", {"digest": "d1", "expires_at": 99.0})
    assert first == again == {"digest": "d1", "expires_at": 1.0}
    assert await journal.get_wait("r2", "approve") == first
