"""A2A tasks in Redis, so every gateway of a fleet answers for every task.

Layout (``{prefix}`` is ``runs.key_prefix``, keys apart from the runs')::

    {prefix}a2a:task:{id}                   the record (JSON); expires ``retention`` after it finished
    {prefix}a2a:push:{id}                   hash: config id -> {"createdAt", "config"}
    {prefix}a2a:tasks:{n}:{owner}:{agent}   sorted set of task ids scored by ``updated_at``

Listing reads the owner's index for the agent newest first and filters the
records (dropping index entries of tasks that expired); its cost grows with
the owner's tasks of that agent within the retention.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import redis.asyncio as aioredis

from gateway.model import JSON
from gateway.state.redis import redis_call
from gateway.tasks.store import TaskPage, TaskQuery, TaskRecord, TaskStore, cursor_of, matches, parse_cursor

T = TypeVar("T")
_BATCH = 200


class RedisTaskStore(TaskStore):
    """Tasks under ``key_prefix`` in Redis."""

    def __init__(self, url: str, retention: float, *, key_prefix: str = "agw:runs:") -> None:
        super().__init__(retention)
        self.key_prefix = key_prefix
        self.client: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=False)

    def _task_key(self, task_id: str) -> str:
        return f"{self.key_prefix}a2a:task:{task_id}"

    def _push_key(self, task_id: str) -> str:
        return f"{self.key_prefix}a2a:push:{task_id}"

    def _index_key(self, owner: str, agent: str) -> str:
        return f"{self.key_prefix}a2a:tasks:{len(owner)}:{owner}:{agent}"

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        return await redis_call(operation, "A2A task")

    async def open(self) -> None:
        await self._call(self.client.ping)

    async def close(self) -> None:
        await self.client.aclose()

    async def save(self, record: TaskRecord) -> None:
        key = self._task_key(record.task_id)
        ttl = max(1, round(self.retention))

        async def work() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(key, record.to_json())
                if record.finished:
                    pipe.expire(key, ttl)
                    pipe.expire(self._push_key(record.task_id), ttl)
                else:
                    pipe.persist(key)
                index = self._index_key(record.owner, record.agent)
                pipe.zadd(index, {record.task_id: record.updated_at})
                pipe.expire(index, ttl * 2)  # outlives its newest task; expired ones are dropped when listed
                await pipe.execute()

        await self._call(work)

    async def get(self, task_id: str) -> TaskRecord | None:
        raw = await self._call(lambda: self.client.get(self._task_key(task_id)))
        return TaskRecord.from_json(raw) if raw is not None else None

    async def list(self, query: TaskQuery) -> TaskPage:
        index = self._index_key(query.owner, query.agent)
        after = parse_cursor(query.cursor) if query.cursor else None
        found: list[TaskRecord] = []
        total = 0
        start = 0
        while True:
            rows: Any = await self._call(partial(self.client.zrevrange, index, start, start + _BATCH - 1))
            if not rows:
                break
            start += len(rows)
            ids = [r.decode() for r in rows]
            values = await self._call(partial(self.client.mget, [self._task_key(i) for i in ids]))
            gone = [i for i, v in zip(ids, values, strict=True) if v is None]
            if gone:
                await self._call(partial(self.client.zrem, index, *gone))
                start -= len(gone)
            for value in values:
                if value is None:
                    continue
                record = TaskRecord.from_json(value)
                if not matches(record, query):
                    continue
                total += 1
                if after is not None and (record.updated_at, record.task_id) >= after:
                    continue
                found.append(record)
        found.sort(key=lambda r: (r.updated_at, r.task_id), reverse=True)
        page = tuple(found[: query.page_size])
        more = len(found) > query.page_size
        return TaskPage(page, cursor_of(page[-1]) if more and page else "", total)

    async def save_push_config(self, task_id: str, config_id: str, config: JSON) -> None:
        value = json.dumps({"createdAt": time.time(), "config": config})
        await self._call(lambda: self.client.hset(self._push_key(task_id), config_id, value))

    async def push_configs(self, task_id: str) -> Sequence[tuple[str, JSON]]:
        raw: Any = await self._call(lambda: self.client.hgetall(self._push_key(task_id)))
        entries = [(k.decode(), json.loads(v)) for k, v in raw.items()]
        entries.sort(key=lambda e: (e[1]["createdAt"], e[0]))
        return [(k, v["config"]) for k, v in entries]

    async def delete_push_config(self, task_id: str, config_id: str) -> None:
        await self._call(lambda: self.client.hdel(self._push_key(task_id), config_id))
