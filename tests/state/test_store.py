"""The state store contract, run against every backend (SQLite and Redis)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.model import Conflict, InvalidRequest
from gateway.state.redis import RedisStateStore
from gateway.state.sqlite import SqliteStateStore
from gateway.state.store import (
    Scope,
    ScopeFull,
    ScopeRef,
    StateLimits,
    StateStore,
    StateUnavailable,
    StateValue,
    ValueTooLarge,
)
from tests.helpers.redis import StoreFactory

SESSION = ScopeRef(Scope.SESSION, "s-1")


def js(value: object) -> StateValue:
    return StateValue.of_json(value)


async def test_put_get_roundtrip_json_and_bytes(store: StateStore) -> None:
    document = {"plan": ["a", "b"], "n": 12345678901234567, "pi": 3.25, "ok": True, "none": None, "é": "ü"}
    first = await store.put(SESSION, "doc", js(document))
    assert first.version == 1 and first.etag
    got = await store.get(SESSION, "doc")
    assert got is not None
    assert got.value.is_json and got.value.json() == document  # integers stay exact
    assert got.etag == first.etag and got.version == 1
    raw = bytes(range(256))
    await store.put(SESSION, "blob", StateValue.of_bytes(raw))
    blob = await store.get(SESSION, "blob")
    assert blob is not None and not blob.value.is_json and blob.value.payload == raw
    with pytest.raises(TypeError):
        blob.value.json()


async def test_every_write_gets_a_new_etag_and_version(store: StateStore) -> None:
    one = await store.put(SESSION, "k", js(1))
    two = await store.put(SESSION, "k", js(2))
    assert two.version == 2 and two.etag != one.etag
    assert await store.delete(SESSION, "k")
    again = await store.put(SESSION, "k", js(3))
    # A re-created key starts over at version 1 but never reuses an ETag.
    assert again.version == 1 and again.etag not in {one.etag, two.etag}


async def test_get_and_delete_of_absent_keys(store: StateStore) -> None:
    assert await store.get(SESSION, "missing") is None
    assert await store.delete(SESSION, "missing") is False
    await store.put(SESSION, "there", js("x"))
    assert await store.delete(SESSION, "there") is True
    assert await store.get(SESSION, "there") is None


async def test_compare_and_set(store: StateStore) -> None:
    created = await store.compare_and_set(SESSION, "counter", None, js(0))
    with pytest.raises(Conflict, match="already exists"):
        await store.compare_and_set(SESSION, "counter", None, js(99))
    updated = await store.compare_and_set(SESSION, "counter", created.etag, js(1))
    with pytest.raises(Conflict, match="ETag mismatch") as stale:
        await store.compare_and_set(SESSION, "counter", created.etag, js(2))
    assert stale.value.details["etag"] == updated.etag  # the caller learns the current ETag
    current = await store.get(SESSION, "counter")
    assert current is not None and current.value.json() == 1


async def test_conditional_write_and_delete_preconditions(store: StateStore) -> None:
    with pytest.raises(Conflict, match="does not exist"):
        await store.put(SESSION, "k", js(1), if_match="*")
    record = await store.put(SESSION, "k", js(1), if_none_match=True)
    assert (await store.put(SESSION, "k", js(2), if_match="*")).version == 2
    with pytest.raises(Conflict):
        await store.delete(SESSION, "k", if_match=record.etag)
    with pytest.raises(Conflict, match="does not exist"):
        await store.delete(SESSION, "gone", if_match="*")
    current = await store.get(SESSION, "k")
    assert current is not None
    assert await store.delete(SESSION, "k", if_match=current.etag)


async def test_concurrent_compare_and_set_loses_no_update(store: StateStore) -> None:
    await store.put(SESSION, "counter", js(0))
    writers, conflicts = 12, 0

    async def increment() -> None:
        nonlocal conflicts
        for _ in range(200):  # bounded retries
            current = await store.get(SESSION, "counter")
            assert current is not None
            try:
                await store.compare_and_set(SESSION, "counter", current.etag, js(current.value.json() + 1))
                return
            except Conflict:
                conflicts += 1
                await asyncio.sleep(0)
        raise AssertionError("no progress after 200 attempts")

    await asyncio.wait_for(asyncio.gather(*(increment() for _ in range(writers))), 30)
    final = await store.get(SESSION, "counter")
    assert final is not None and final.value.json() == writers
    assert final.version == writers + 1


async def test_concurrent_create_only_has_exactly_one_winner(store: StateStore) -> None:
    results = await asyncio.gather(
        *(store.put(SESSION, "leader", js(i), if_none_match=True) for i in range(10)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    leader = await store.get(SESSION, "leader")
    assert leader is not None and leader.etag == winners[0].etag


async def test_list_by_prefix_in_key_order_with_pages(store: StateStore) -> None:
    for key in ["plan/3", "plan/1", "plan/2", "planet", "notes", "plan/ü", "plan/10"]:
        await store.put(SESSION, key, js(key))
    await store.put(ScopeRef(Scope.SESSION, "other"), "plan/9", js("elsewhere"))
    page = await store.list(SESSION, "plan/")
    assert [r.key for r in page.records] == ["plan/1", "plan/10", "plan/2", "plan/3", "plan/ü"]
    assert page.next_after is None
    assert page.records[0].value.json() == "plan/1"
    first = await store.list(SESSION, "plan/", limit=2)
    assert [r.key for r in first.records] == ["plan/1", "plan/10"] and first.next_after == "plan/10"
    second = await store.list(SESSION, "plan/", after=first.next_after, limit=2)
    assert [r.key for r in second.records] == ["plan/2", "plan/3"]
    third = await store.list(SESSION, "plan/", after="plan/3", limit=2)
    assert [r.key for r in third.records] == ["plan/ü"] and third.next_after is None
    everything = await store.list(SESSION)
    assert [r.key for r in everything.records] == sorted(
        ["plan/3", "plan/1", "plan/2", "planet", "notes", "plan/ü", "plan/10"]
    )
    assert (await store.list(SESSION, "zzz")).records == ()
    with pytest.raises(InvalidRequest):
        await store.list(SESSION, limit=0)


async def test_scopes_are_isolated(store: StateStore) -> None:
    scopes = [
        ScopeRef(Scope.SESSION, "a"),
        ScopeRef(Scope.SESSION, "b"),
        ScopeRef(Scope.THREAD, "a"),
        ScopeRef(Scope.USER, "a"),
        ScopeRef(Scope.WORKFLOW, "a"),
        # Ids and keys containing separators must not collide: "x:1" + "k" vs "x" + "1:k".
        ScopeRef(Scope.SESSION, "x:1"),
        ScopeRef(Scope.SESSION, "x"),
    ]
    for index, scope in enumerate(scopes):
        await store.put(scope, "k" if scope.id != "x" else "1:k", js(index))
    for index, scope in enumerate(scopes):
        key = "k" if scope.id != "x" else "1:k"
        record = await store.get(scope, key)
        assert record is not None and record.value.json() == index, scope
        assert [r.key for r in (await store.list(scope)).records] == [key]
    assert await store.get(ScopeRef(Scope.SESSION, "x"), "k") is None
    await store.delete(scopes[0], "k")
    assert await store.get(scopes[1], "k") is not None


async def test_ttl_expiry(store: StateStore) -> None:
    await store.put(SESSION, "short", js("soon gone"), ttl=0.3)
    await store.put(SESSION, "long", js("stays"))
    record = await store.get(SESSION, "short")
    assert record is not None and record.expires_at is not None
    assert record.expires_at - record.updated_at == pytest.approx(0.3, abs=0.01)
    await asyncio.sleep(0.45)
    assert await store.get(SESSION, "short") is None
    assert [r.key for r in (await store.list(SESSION)).records] == ["long"]
    # An expired key is absent for conditional writes too.
    with pytest.raises(Conflict):
        await store.put(SESSION, "short", js(1), if_match="*")
    recreated = await store.put(SESSION, "short", js("back"), if_none_match=True)
    assert recreated.version == 1 and recreated.expires_at is None
    with pytest.raises(InvalidRequest, match="ttl"):
        await store.put(SESSION, "bad", js(1), ttl=0)


async def test_default_ttl_per_scope_and_rewrite_refreshes(store_factory: StoreFactory) -> None:
    store = await store_factory(default_ttl={Scope.SESSION: 0.3})
    await store.put(SESSION, "k", js(1))
    user = ScopeRef(Scope.USER, "u")
    await store.put(user, "k", js(1))
    assert (await store.get(user, "k")).expires_at is None  # type: ignore[union-attr]
    await asyncio.sleep(0.2)
    await store.put(SESSION, "k", js(2))  # a write starts a new TTL
    await asyncio.sleep(0.2)
    assert await store.get(SESSION, "k") is not None
    await asyncio.sleep(0.25)
    assert await store.get(SESSION, "k") is None
    assert await store.get(user, "k") is not None
    # An explicit TTL wins over the scope's default.
    await store.put(SESSION, "kept", js(1), ttl=30)
    kept = await store.get(SESSION, "kept")
    assert kept is not None and kept.expires_at is not None and kept.expires_at - kept.updated_at > 29


async def test_value_size_limit(store_factory: StoreFactory) -> None:
    store = await store_factory(limits=StateLimits(max_value_bytes=16))
    await store.put(SESSION, "fits", StateValue.of_bytes(b"x" * 16))
    with pytest.raises(ValueTooLarge, match="max_value_bytes") as info:
        await store.put(SESSION, "big", StateValue.of_bytes(b"x" * 17))
    assert info.value.status == 413 and info.value.details["size"] == 17
    with pytest.raises(ValueTooLarge):
        await store.put(SESSION, "big", js("a" * 20))
    assert await store.get(SESSION, "big") is None


async def test_keys_per_scope_limit(store_factory: StoreFactory) -> None:
    store = await store_factory(limits=StateLimits(max_keys_per_scope=3))
    for key in ("a", "b", "c"):
        await store.put(SESSION, key, js(key))
    with pytest.raises(ScopeFull, match="max_keys_per_scope") as info:
        await store.put(SESSION, "d", js("d"))
    assert not info.value.transient and info.value.code.value == "RESOURCE_EXHAUSTED"
    await store.put(SESSION, "a", js("overwrite is fine"))
    await store.put(ScopeRef(Scope.SESSION, "other"), "d", js("another scope has its own budget"))
    await store.delete(SESSION, "b")
    await store.put(SESSION, "d", js("d"))
    # Expired keys stop counting.
    await store.delete(SESSION, "c")
    await store.put(SESSION, "e", js("e"), ttl=0.2)
    with pytest.raises(ScopeFull):
        await store.put(SESSION, "f", js("f"))
    await asyncio.sleep(0.3)
    await store.put(SESSION, "f", js("f"))
    assert [r.key for r in (await store.list(SESSION)).records] == ["a", "d", "f"]


@pytest.mark.parametrize("key", ["", "x" * 513, "bad\nkey"])
async def test_bad_keys_are_refused(store: StateStore, key: str) -> None:
    with pytest.raises(InvalidRequest):
        await store.put(SESSION, key, js(1))
    with pytest.raises(InvalidRequest):
        await store.get(SESSION, key)


def test_scope_ids_and_json_are_validated() -> None:
    with pytest.raises(InvalidRequest, match="needs an id"):
        ScopeRef(Scope.THREAD, "")
    with pytest.raises(InvalidRequest):
        ScopeRef(Scope.THREAD, "a\x00b")
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        StateValue.of_json_text("{nope")
    with pytest.raises(InvalidRequest, match="NaN"):
        StateValue.of_json_text("NaN")
    with pytest.raises(InvalidRequest, match="JSON-serializable"):
        StateValue.of_json({"x": {1, 2}})
    assert StateValue.of_json_text('{ "a" : [1, 2.5] }').payload == b'{"a":[1,2.5]}'


async def test_sqlite_survives_a_restart_and_uses_wal_full(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.db"
    first = SqliteStateStore(path)
    await first.open()
    written = await first.put(SESSION, "durable", js({"v": 1}))
    await first.put(SESSION, "brief", js(1), ttl=0.1)
    await first.close()
    second = SqliteStateStore(path)
    await second.open()
    try:
        record = await second.get(SESSION, "durable")
        assert record is not None and record.value.json() == {"v": 1} and record.etag == written.etag
        await asyncio.sleep(0.15)
        assert await second.sweep() == 1  # the expired row is reclaimed
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert check.execute("SELECT COUNT(*) FROM agw_state").fetchone()[0] == 1
    finally:
        await second.close()


async def test_redis_unreachable_is_a_clear_unavailable_error() -> None:
    store = RedisStateStore("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(StateUnavailable, match="unreachable") as info:
            await store.open()
        assert info.value.transient and info.value.status == 503
    finally:
        await store.close()
