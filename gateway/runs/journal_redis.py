"""The workflow journal in Redis, so any gateway of a fleet can take a run over.

Layout (``{prefix}`` is ``runs.key_prefix``)::

    {prefix}wf:{id}          the run (JSON)
    {prefix}wf:{id}:steps    hash: step name -> outcome (JSON)
    {prefix}wf:{id}:waits    hash: step name -> pending wait (JSON)
    {prefix}wf:{id}:lease    the gateway id holding the run, expiring with the lease
    {prefix}wf:open          set of unfinished run ids

A lapsed lease is an absent key, so taking a run over is ``SET NX``: one gateway wins.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis

from gateway.model import JSON
from gateway.runs.journal import JournaledRun, WorkflowJournal
from gateway.state.redis import redis_call

T = TypeVar("T")

_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisWorkflowJournal(WorkflowJournal):
    def __init__(self, url: str, *, key_prefix: str = "agw:runs:", retention: float = 24 * 3600.0) -> None:
        self.prefix = key_prefix
        self.retention = retention
        self.client: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=False)

    def _key(self, run_id: str, suffix: str = "") -> str:
        return f"{self.prefix}wf:{run_id}{suffix}"

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        return await redis_call(operation, "workflow journal")

    async def open(self) -> None:
        await self._call(self.client.ping)

    async def close(self) -> None:
        await self.client.aclose()

    async def begin(self, run: JournaledRun, lease: float) -> None:
        async def work() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(self._key(run.run_id), run.to_json())
                pipe.set(self._key(run.run_id, ":lease"), run.gateway_id, px=max(1, round(lease * 1000)))
                pipe.sadd(f"{self.prefix}wf:open", run.run_id)
                await pipe.execute()

        await self._call(work)

    async def record_step(self, run_id: str, step: str, outcome: JSON) -> None:
        await self._call(lambda: self.client.hsetnx(self._key(run_id, ":steps"), step, json.dumps(outcome)))

    async def steps(self, run_id: str) -> dict[str, JSON]:
        raw = await self._call(lambda: self.client.hgetall(self._key(run_id, ":steps")))
        return {_text(k): json.loads(v) for k, v in raw.items()}

    async def finish(self, run_id: str, outcome: JSON) -> None:
        run = await self.get(run_id)
        if run is None:
            return
        data = json.loads(run.to_json())
        data.update(finished=True, outcome=outcome)
        ttl = max(1, round(self.retention))

        async def work() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(self._key(run_id), json.dumps(data), ex=ttl)
                pipe.expire(self._key(run_id, ":steps"), ttl)
                pipe.expire(self._key(run_id, ":waits"), ttl)
                pipe.delete(self._key(run_id, ":lease"))
                pipe.srem(f"{self.prefix}wf:open", run_id)
                await pipe.execute()

        await self._call(work)

    async def get(self, run_id: str) -> JournaledRun | None:
        raw = await self._call(lambda: self.client.get(self._key(run_id)))
        if raw is None:
            return None
        holder = await self._call(lambda: self.client.get(self._key(run_id, ":lease")))
        run = JournaledRun.from_json(raw)
        return JournaledRun(**{**json.loads(run.to_json()), "gateway_id": _text(holder) if holder else ""})

    async def put_wait(self, run_id: str, step: str, pending: JSON) -> JSON:
        key = self._key(run_id, ":waits")
        await self._call(lambda: self.client.hsetnx(key, step, json.dumps(pending)))
        return await self.get_wait(run_id, step)

    async def get_wait(self, run_id: str, step: str) -> JSON:
        raw = await self._call(lambda: self.client.hget(self._key(run_id, ":waits"), step))
        return json.loads(raw) if raw is not None else None

    async def renew(self, run_ids: list[str], gateway_id: str, lease: float) -> None:
        millis = max(1, round(lease * 1000))
        for run_id in run_ids:
            key = self._key(run_id, ":lease")
            await self._call(lambda key=key: self.client.eval(_RENEW, 1, key, gateway_id, millis))  # type: ignore[misc]

    async def release(self, run_ids: list[str], gateway_id: str) -> None:
        for run_id in run_ids:
            key = self._key(run_id, ":lease")
            await self._call(lambda key=key: self.client.eval(_RELEASE, 1, key, gateway_id))  # type: ignore[misc]

    async def _take(self, run_id: str, gateway_id: str, millis: int) -> JournaledRun | None:
        won = await self._call(lambda: self.client.set(self._key(run_id, ":lease"), gateway_id, px=millis, nx=True))
        if not won:
            return None
        raw = await self._call(lambda: self.client.get(self._key(run_id)))
        if raw is None:
            await self._call(lambda: self.client.srem(f"{self.prefix}wf:open", run_id))
            return None
        run = JournaledRun.from_json(raw)
        return JournaledRun(**{**json.loads(run.to_json()), "gateway_id": gateway_id})

    async def claim_lapsed(self, gateway_id: str, lease: float, limit: int = 16) -> list[JournaledRun]:
        members = await self._call(lambda: self.client.smembers(f"{self.prefix}wf:open"))
        claimed: list[JournaledRun] = []
        for member in sorted(_text(m) for m in members):
            run = await self._take(member, gateway_id, max(1, round(lease * 1000)))
            if run is not None:
                claimed.append(run)
                if len(claimed) >= limit:
                    break
        return claimed
