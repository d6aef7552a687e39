"""Runs in Redis, so every gateway of a fleet answers for every run.

Layout (``{prefix}`` is ``runs.key_prefix``)::

    {prefix}run:{id}             the record (JSON); expires ``retention`` after the run finished
    {prefix}run:{id}:cancel      "1" once someone asked for a cancel
    {prefix}run:{id}:events      sorted set scored by sequence id, member "<seq>:<event JSON>"
    {prefix}session:{n}:{sid}:{owner}   sorted set of run ids scored by creation time

Listing drops the index entries of runs that expired.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis

from gateway.model import InvalidRequest
from gateway.runs.store import RunPage, RunRecord, RunStore, StoredEvent, check_page_size
from gateway.state.redis import redis_call

T = TypeVar("T")


class RedisRunStore(RunStore):
    """Runs under ``key_prefix`` in Redis."""

    def __init__(self, url: str, retention: float, *, key_prefix: str = "agw:runs:") -> None:
        super().__init__(retention)
        self.key_prefix = key_prefix
        self.client: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=False)

    def _run_key(self, run_id: str) -> str:
        return f"{self.key_prefix}run:{run_id}"

    def _session_key(self, session_id: str, owner: str) -> str:
        return f"{self.key_prefix}session:{len(session_id)}:{session_id}:{owner}"

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        return await redis_call(operation, "run")

    async def open(self) -> None:
        await self._call(self.client.ping)

    async def close(self) -> None:
        await self.client.aclose()

    async def save(self, record: RunRecord) -> None:
        key = self._run_key(record.run_id)
        ttl = max(1, round(self.retention))

        async def work() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(key, record.to_json())
                if record.status.finished:
                    pipe.expire(key, ttl)
                    pipe.expire(key + ":events", ttl)
                    pipe.expire(key + ":cancel", ttl)
                if record.session_id:
                    index = self._session_key(record.session_id, record.owner)
                    pipe.zadd(index, {record.run_id: record.created_at})
                    # Outlives its newest run; expired runs are dropped from it when listed.
                    pipe.expire(index, ttl * 2)
                await pipe.execute()

        await self._call(work)

    async def get(self, run_id: str) -> RunRecord | None:
        key = self._run_key(run_id)
        raw, cancel = await self._call(lambda: self.client.mget([key, key + ":cancel"]))
        return RunRecord.from_json(raw, cancel is not None) if raw is not None else None

    async def append_events(self, run_id: str, events: Sequence[StoredEvent]) -> None:
        if not events:
            return
        members = {f"{e.sequence}:{e.payload}": e.sequence for e in events}
        await self._call(lambda: self.client.zadd(self._run_key(run_id) + ":events", members))

    async def events(self, run_id: str, after: int, limit: int = 500) -> list[StoredEvent]:
        key = self._run_key(run_id) + ":events"
        rows: Any = await self._call(lambda: self.client.zrangebyscore(key, f"({after}", "+inf", start=0, num=limit))
        out = []
        for row in rows:
            sequence, _, payload = row.decode().partition(":")
            out.append(StoredEvent(int(sequence), payload))
        return out

    async def list_session(self, session_id: str, owner: str, *, before: str = "", limit: int = 50) -> RunPage:
        check_page_size(limit)
        index = self._session_key(session_id, owner)
        high: str | float = "+inf"
        skip_from = ""
        if before:
            created, sep, skip_from = before.partition("|")
            try:
                high = float(created) if sep else float("nan")
            except ValueError:
                high = float("nan")
            if high != high:
                raise InvalidRequest("the page token is not one this gateway issued")
        # Same-score members come in reverse lexical order: skip those at or after the cursor's id.
        rows: Any = await self._call(
            lambda: self.client.zrevrangebyscore(index, high, "-inf", start=0, num=limit + 64, withscores=True)
        )
        ids: list[str] = []
        for member, score in rows:
            run_id = member.decode()
            if before and score == high and run_id >= skip_from:
                continue
            ids.append(run_id)
        ids = ids[: limit + 1]
        if not ids:
            return RunPage(())
        keys = [self._run_key(i) for i in ids]
        values = await self._call(lambda: self.client.mget(keys))
        cancels = await self._call(lambda: self.client.mget([k + ":cancel" for k in keys]))
        gone = [i for i, v in zip(ids, values, strict=True) if v is None]
        if gone:
            await self._call(lambda: self.client.zrem(index, *gone))
        runs = [RunRecord.from_json(v, c is not None) for v, c in zip(values, cancels, strict=True) if v is not None]
        page = tuple(runs[:limit])
        more = len(runs) > limit
        return RunPage(page, f"{page[-1].created_at!r}|{page[-1].run_id}" if more and page else None)

    async def request_cancel(self, run_id: str) -> None:
        key = self._run_key(run_id) + ":cancel"
        await self._call(lambda: self.client.set(key, b"1", ex=max(1, round(self.retention))))

    async def cancels_requested(self, run_ids: Iterable[str]) -> set[str]:
        ids = list(run_ids)
        if not ids:
            return set()
        values = await self._call(lambda: self.client.mget([self._run_key(i) + ":cancel" for i in ids]))
        return {i for i, v in zip(ids, values, strict=True) if v is not None}
