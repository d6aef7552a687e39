"""The zero-setup default backend: one SQLite file (stdlib ``sqlite3``).

Durability: WAL journal with ``synchronous=FULL``, so a write that returned has
been fsynced and survives a crash or power loss. Every operation runs as one
transaction on one dedicated thread (one connection), so operations never
interleave inside the process; ``BEGIN IMMEDIATE`` keeps conditional writes
atomic even when several gateway processes share the file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TypeVar

from gateway.state.sqlite_db import SqliteBacked, SqliteDatabase, transaction
from gateway.state.store import (
    Page,
    Scope,
    ScopeRef,
    StateLimits,
    StateRecord,
    StateStore,
    StateValue,
    check_key,
    check_listing,
    etag_conflict,
    new_etag,
    now,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agw_state (
    scope      TEXT    NOT NULL,
    scope_id   TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    is_json    INTEGER NOT NULL,
    etag       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    updated_at REAL    NOT NULL,
    expires_at REAL,
    PRIMARY KEY (scope, scope_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS agw_state_expiry ON agw_state (expires_at) WHERE expires_at IS NOT NULL;
"""
_COLUMNS = "key, payload, is_json, etag, version, updated_at, expires_at"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
# Expired rows are invisible at once; this sweep only reclaims their space.
SWEEP_INTERVAL = 60.0

Row = tuple[str, bytes, int, str, int, float, float | None]


def _record(row: Row) -> StateRecord:
    key, payload, is_json, etag, version, updated_at, expires_at = row
    return StateRecord(key, StateValue(bytes(payload), bool(is_json)), etag, version, updated_at, expires_at)


class SqliteStateStore(SqliteBacked, StateStore):
    """State in a SQLite file (``:memory:`` for a throwaway store)."""

    def __init__(
        self,
        path: str | Path,
        limits: StateLimits | None = None,
        default_ttl: dict[Scope, float] | None = None,
        *,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        super().__init__(limits, default_ttl)
        self.path = str(path)
        self.sweep_interval = sweep_interval
        # One thread owns the connection: sqlite3 objects stay on the thread that made them.
        self.db = SqliteDatabase(path, _SCHEMA, "state")

    async def open(self) -> None:
        await self.db.open()
        self.db.sweep_every(self.sweep_interval, self.sweep)

    async def sweep(self) -> int:
        """Delete expired rows now; returns how many."""

        def work(db: sqlite3.Connection) -> int:
            with transaction(db):
                return db.execute("DELETE FROM agw_state WHERE expires_at <= ?", (now(),)).rowcount

        return await self._run(work)

    async def get(self, scope: ScopeRef, key: str) -> StateRecord | None:
        check_key(key)

        def work(db: sqlite3.Connection) -> StateRecord | None:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM agw_state WHERE scope = ? AND scope_id = ? AND key = ? AND {_LIVE}",
                (scope.scope.value, scope.id, key, now()),
            ).fetchone()
            return _record(row) if row else None

        return await self._run(work)

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
        started = now()
        ttl = self.check_write(key, value, ttl, scope.scope)
        expires_at = started + ttl if ttl is not None else None

        def work(db: sqlite3.Connection) -> StateRecord:
            with transaction(db):
                current = _current(db, scope, key, started)
                etag_conflict(key, if_match, if_none_match, current)
                if current is None:
                    # An expired row may still sit there: it counts as absent.
                    db.execute(
                        "DELETE FROM agw_state WHERE scope = ? AND scope_id = ? AND key = ?",
                        (scope.scope.value, scope.id, key),
                    )
                    (count,) = db.execute(
                        f"SELECT COUNT(*) FROM agw_state WHERE scope = ? AND scope_id = ? AND {_LIVE}",
                        (scope.scope.value, scope.id, started),
                    ).fetchone()
                    if count >= self.limits.max_keys_per_scope:
                        raise self.scope_full(scope)
                version = current.version + 1 if current is not None else 1
                record = StateRecord(key, value, new_etag(), version, started, expires_at)
                db.execute(
                    "INSERT OR REPLACE INTO agw_state (scope, scope_id, key, payload, is_json, etag, version,"
                    " updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        scope.scope.value,
                        scope.id,
                        key,
                        value.payload,
                        int(value.is_json),
                        record.etag,
                        version,
                        started,
                        expires_at,
                    ),
                )
                return record

        return await self._run(work)

    async def delete(self, scope: ScopeRef, key: str, *, if_match: str | None = None) -> bool:
        check_key(key)

        def work(db: sqlite3.Connection) -> bool:
            with transaction(db):
                current = _current(db, scope, key, now())
                etag_conflict(key, if_match, False, current)
                db.execute(
                    "DELETE FROM agw_state WHERE scope = ? AND scope_id = ? AND key = ?",
                    (scope.scope.value, scope.id, key),
                )
                return current is not None

        return await self._run(work)

    async def list(self, scope: ScopeRef, prefix: str = "", *, after: str = "", limit: int = 100) -> Page:
        check_listing(limit)

        def work(db: sqlite3.Connection) -> Page:
            # Keys compare as UTF-8 bytes in SQLite and as code points in Python: the same order.
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM agw_state WHERE scope = ? AND scope_id = ? AND key > ? AND key >= ?"
                f" AND substr(key, 1, ?) = ? AND {_LIVE} ORDER BY key LIMIT ?",
                (scope.scope.value, scope.id, after, prefix, len(prefix), prefix, now(), limit + 1),
            ).fetchall()
            records = tuple(_record(row) for row in rows[:limit])
            return Page(records, records[-1].key if len(rows) > limit else None)

        return await self._run(work)


def _current(db: sqlite3.Connection, scope: ScopeRef, key: str, at: float) -> StateRecord | None:
    row = db.execute(
        f"SELECT {_COLUMNS} FROM agw_state WHERE scope = ? AND scope_id = ? AND key = ? AND {_LIVE}",
        (scope.scope.value, scope.id, key, at),
    ).fetchone()
    return _record(row) if row else None
