"""The shared backend: Redis (redis-py asyncio), for gateways on several hosts.

Layout per scope (one hash tag, so a scope's keys share a cluster slot)::

    {prefix}{session:4:s-42}:v:{key}   hash: p payload, j is-json, e etag, v version,
                                             u updated (ms), x expires (ms or "")
    {prefix}{session:4:s-42}:keys      sorted set of keys, all score 0 (prefix listing, counting)
    {prefix}{session:4:s-42}:exp       sorted set of keys with a TTL, scored by expiry (ms)

Conditional writes, deletes and listings are Lua scripts, so each is atomic.
A value's TTL is the hash's own expiry (``PEXPIREAT``); the scripts drop the
index entries of expired keys before counting or listing. Durability is the
server's: with ``appendonly yes`` and ``appendfsync always`` a write that
returned survives a crash; with ``everysec`` up to a second may be lost; with
RDB snapshots only, everything since the last snapshot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.model import Conflict
from gateway.state.store import (
    Page,
    Scope,
    ScopeRef,
    StateLimits,
    StateRecord,
    StateStore,
    StateUnavailable,
    StateValue,
    check_key,
    check_listing,
    new_etag,
)

T = TypeVar("T")


async def redis_call(operation: Callable[[], Awaitable[T]], store: str) -> T:
    """Run one Redis operation; its failures become StateUnavailable (503, transient when the
    server is unreachable) naming ``store``."""
    try:
        return await operation()
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise StateUnavailable(f"the Redis {store} store is unreachable: {exc}") from None
    except RedisError as exc:
        raise StateUnavailable(f"the Redis {store} store failed: {exc}", transient=False) from None


DEFAULT_PREFIX = "agw:state:"

# Drop the index entries (and any lingering hashes) of keys whose expiry has passed.
# Redis expires a key once now > when, hence the exclusive bound.
_PURGE = """
local function purge(base)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local bound = '(' .. string.format('%.0f', now)
  local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', bound)
  for _, member in ipairs(dead) do
    redis.call('ZREM', KEYS[2], member)
    redis.call('DEL', base .. member)
  end
  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', bound) end
  return now
end
"""

# KEYS: data hash, key index, expiry index.
# ARGV: member, payload, is_json, if_match ('' none), if_none_match ('1'/'0'),
#       ttl ms ('' none), max keys, new etag, data key base.
_PUT = (
    _PURGE
    + """
local now = purge(ARGV[9])
local current = redis.call('HMGET', KEYS[1], 'e', 'v')
local etag, version = current[1], current[2]
if ARGV[5] == '1' and etag then return {'exists', etag} end
if ARGV[4] ~= '' then
  if not etag then return {'absent'} end
  if ARGV[4] ~= '*' and ARGV[4] ~= etag then return {'mismatch', etag} end
end
if not etag and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[7]) then return {'full'} end
local new_version = string.format('%.0f', (tonumber(version) or 0) + 1)
local updated = string.format('%.0f', now)
local expires = ''
if ARGV[6] ~= '' then expires = string.format('%.0f', now + tonumber(ARGV[6])) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'p', ARGV[2], 'j', ARGV[3], 'e', ARGV[8], 'v', new_version, 'u', updated, 'x', expires)
redis.call('ZADD', KEYS[2], 0, ARGV[1])
if expires ~= '' then
  redis.call('PEXPIREAT', KEYS[1], expires)
  redis.call('ZADD', KEYS[3], expires, ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return {'ok', new_version, updated, expires}
"""
)

# KEYS: data hash, key index, expiry index. ARGV: member, if_match ('' none), data key base.
_DELETE = (
    _PURGE
    + """
purge(ARGV[3])
local etag = redis.call('HGET', KEYS[1], 'e')
if ARGV[2] ~= '' then
  if not etag then return {'absent'} end
  if ARGV[2] ~= '*' and ARGV[2] ~= etag then return {'mismatch', etag} end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if etag then return {'deleted'} end
return {'absent'}
"""
)

# KEYS: (unused), key index, expiry index. ARGV: data key base, lex min, lex max, count.
_LIST = (
    _PURGE
    + """
purge(ARGV[1])
local members = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[2], ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, member in ipairs(members) do
  local h = redis.call('HMGET', ARGV[1] .. member, 'p', 'j', 'e', 'v', 'u', 'x')
  if h[3] then table.insert(out, {member, h[1], h[2], h[3], h[4], h[5], h[6]}) end
end
return out
"""
)

_FIELDS = ("p", "j", "e", "v", "u", "x")


def _record(key: str, fields: list[Any]) -> StateRecord:
    payload, is_json, etag, version, updated, expires = fields
    return StateRecord(
        key=key,
        value=StateValue(bytes(payload), is_json == b"1"),
        etag=etag.decode(),
        version=int(version),
        updated_at=int(updated) / 1000,
        expires_at=int(expires) / 1000 if expires else None,
    )


class RedisStateStore(StateStore):
    """State in Redis, under ``key_prefix`` (one prefix per gateway deployment or test run)."""

    def __init__(
        self,
        url: str,
        limits: StateLimits | None = None,
        default_ttl: dict[Scope, float] | None = None,
        *,
        key_prefix: str = DEFAULT_PREFIX,
    ) -> None:
        super().__init__(limits, default_ttl)
        self.url = url
        self.key_prefix = key_prefix
        self.client: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=False)
        self._put = self.client.register_script(_PUT)
        self._delete = self.client.register_script(_DELETE)
        self._list = self.client.register_script(_LIST)

    def _keys(self, scope: ScopeRef) -> tuple[str, str, str]:
        """(data key base, key index, expiry index); the id's length keeps ids with ':' apart."""
        tag = f"{self.key_prefix}{{{scope.scope.value}:{len(scope.id)}:{scope.id}}}"
        return f"{tag}:v:", f"{tag}:keys", f"{tag}:exp"

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        return await redis_call(operation, "state")

    async def open(self) -> None:
        await self._call(self.client.ping)

    async def close(self) -> None:
        await self.client.aclose()

    async def get(self, scope: ScopeRef, key: str) -> StateRecord | None:
        check_key(key)
        base, _, _ = self._keys(scope)
        fields = await self._call(lambda: self.client.hmget(base + key, _FIELDS))
        return _record(key, fields) if fields[2] is not None else None

    async def put(
        self,
        scope: ScopeRef,
        key: str,
        value: StateValue,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        ttl: float | None = None,
    ) -> StateRecord:
        # The script adds the TTL to the server's clock, the one PEXPIREAT obeys.
        ttl = self.check_write(key, value, ttl, scope.scope)
        ttl_ms = "" if ttl is None else str(max(1, round(ttl * 1000)))
        base, index, expiries = self._keys(scope)
        etag = new_etag()
        args: list[bytes | str | int] = [
            key,
            value.payload,
            "1" if value.is_json else "0",
            if_match or "",
            "1" if if_none_match else "0",
            ttl_ms,
            self.limits.max_keys_per_scope,
            etag,
            base,
        ]
        reply = await self._call(lambda: self._put(keys=[base + key, index, expiries], args=args))
        status = reply[0].decode()
        if status != "ok":
            raise self._refusal(status, key, reply, scope)
        version, updated, expires = reply[1:]
        return StateRecord(
            key, value, etag, int(version), int(updated) / 1000, int(expires) / 1000 if expires else None
        )

    def _refusal(self, status: str, key: str, reply: list[Any], scope: ScopeRef) -> Exception:
        if status == "full":
            return self.scope_full(scope)
        if status == "exists":
            return Conflict(
                f"state key {key!r} already exists (create-only write)",
                details={"key": key, "etag": reply[1].decode()},
            )
        if status == "absent":
            return Conflict(f"state key {key!r} does not exist, so its ETag cannot match", details={"key": key})
        return Conflict(
            f"state key {key!r} changed since you read it (ETag mismatch): read it again and retry",
            details={"key": key, "etag": reply[1].decode()},
        )

    async def delete(self, scope: ScopeRef, key: str, *, if_match: str | None = None) -> bool:
        check_key(key)
        base, index, expiries = self._keys(scope)
        reply = await self._call(
            lambda: self._delete(keys=[base + key, index, expiries], args=[key, if_match or "", base])
        )
        status = reply[0].decode()
        if status == "deleted":
            return True
        if status == "absent" and not if_match:
            return False
        raise self._refusal(status, key, reply, scope)

    async def list(self, scope: ScopeRef, prefix: str = "", *, after: str = "", limit: int = 100) -> Page:
        check_listing(limit)
        base, index, expiries = self._keys(scope)
        low: bytes = b"(" + after.encode() if after and after >= prefix else b"[" + prefix.encode()
        # Keys are UTF-8, which never contains 0xFF: every key with the prefix sorts below prefix+0xFF.
        high: bytes = b"[" + prefix.encode() + b"\xff" if prefix else b"+"
        rows = await self._call(lambda: self._list(keys=[base, index, expiries], args=[base, low, high, limit + 1]))
        records = tuple(_record(row[0].decode(), row[1:]) for row in rows[:limit])
        return Page(records, records[-1].key if len(rows) > limit else None)
