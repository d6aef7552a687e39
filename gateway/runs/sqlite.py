"""Runs in SQLite: the state file (``state.sqlite.path``), so finished runs survive a restart.

Same discipline as :mod:`gateway.state.sqlite`: one connection on one thread,
WAL with ``synchronous=FULL``, one transaction per operation. Events are
written in batches (the run manager coalesces them), so a fast stream costs
one fsync per batch, not per event.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from gateway.model import InvalidRequest
from gateway.runs.store import RunPage, RunRecord, RunStore, StoredEvent, check_page_size
from gateway.state.sqlite_db import SqliteBacked, SqliteDatabase, transaction

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agw_runs (
    run_id           TEXT PRIMARY KEY,
    session_id       TEXT NOT NULL,
    owner            TEXT NOT NULL,
    created_at       REAL NOT NULL,
    finished_at      REAL,
    record           TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS agw_runs_session ON agw_runs (session_id, owner, created_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS agw_runs_finished ON agw_runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS agw_run_events (
    run_id   TEXT    NOT NULL,
    sequence INTEGER NOT NULL,
    payload  TEXT    NOT NULL,
    PRIMARY KEY (run_id, sequence)
) WITHOUT ROWID;
"""
SWEEP_INTERVAL = 300.0


def _cursor(record: RunRecord) -> str:
    return f"{record.created_at!r}|{record.run_id}"


def _parse_cursor(cursor: str) -> tuple[float, str]:
    created, sep, run_id = cursor.partition("|")
    try:
        if not sep:
            raise ValueError(cursor)
        return float(created), run_id
    except ValueError:
        raise InvalidRequest("the page token is not one this gateway issued") from None


class SqliteRunStore(SqliteBacked, RunStore):
    """Runs in a SQLite file (``:memory:`` for runs that die with the process)."""

    def __init__(self, path: str | Path, retention: float, *, sweep_interval: float = SWEEP_INTERVAL) -> None:
        super().__init__(retention)
        self.path = str(path)
        self.sweep_interval = sweep_interval
        self.db = SqliteDatabase(path, _SCHEMA, "runs")

    async def sweep(self) -> int:
        """Forget runs finished longer than ``retention`` ago; returns how many."""
        cutoff = time.time() - self.retention

        def work(db: sqlite3.Connection) -> int:
            with transaction(db):
                db.execute(
                    "DELETE FROM agw_run_events WHERE run_id IN"
                    " (SELECT run_id FROM agw_runs WHERE finished_at IS NOT NULL AND finished_at < ?)",
                    (cutoff,),
                )
                return db.execute(
                    "DELETE FROM agw_runs WHERE finished_at IS NOT NULL AND finished_at < ?", (cutoff,)
                ).rowcount

        return await self._run(work)

    async def save(self, record: RunRecord) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO agw_runs (run_id, session_id, owner, created_at, finished_at, record)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET"
                " finished_at = excluded.finished_at, record = excluded.record",
                (
                    record.run_id,
                    record.session_id,
                    record.owner,
                    record.created_at,
                    record.finished_at,
                    record.to_json(),
                ),
            )

        await self._run(work)

    async def get(self, run_id: str) -> RunRecord | None:
        def work(db: sqlite3.Connection) -> RunRecord | None:
            row = db.execute("SELECT record, cancel_requested FROM agw_runs WHERE run_id = ?", (run_id,)).fetchone()
            return RunRecord.from_json(row[0], bool(row[1])) if row else None

        return await self._run(work)

    async def append_events(self, run_id: str, events: Sequence[StoredEvent]) -> None:
        def work(db: sqlite3.Connection) -> None:
            with transaction(db):
                db.executemany(
                    "INSERT OR REPLACE INTO agw_run_events (run_id, sequence, payload) VALUES (?, ?, ?)",
                    [(run_id, e.sequence, e.payload) for e in events],
                )

        if events:
            await self._run(work)

    async def events(self, run_id: str, after: int, limit: int = 500) -> list[StoredEvent]:
        def work(db: sqlite3.Connection) -> list[StoredEvent]:
            rows = db.execute(
                "SELECT sequence, payload FROM agw_run_events WHERE run_id = ? AND sequence > ?"
                " ORDER BY sequence LIMIT ?",
                (run_id, after, limit),
            ).fetchall()
            return [StoredEvent(int(seq), str(payload)) for seq, payload in rows]

        return await self._run(work)

    async def list_session(self, session_id: str, owner: str, *, before: str = "", limit: int = 50) -> RunPage:
        check_page_size(limit)
        created, run_id = _parse_cursor(before) if before else (float("inf"), "")

        def work(db: sqlite3.Connection) -> RunPage:
            rows = db.execute(
                "SELECT record, cancel_requested FROM agw_runs WHERE session_id = ? AND owner = ?"
                " AND (created_at < ? OR (created_at = ? AND run_id < ?))"
                " ORDER BY created_at DESC, run_id DESC LIMIT ?",
                (session_id, owner, created, created, run_id if before else "\U0010ffff", limit + 1),
            ).fetchall()
            runs = tuple(RunRecord.from_json(r, bool(c)) for r, c in rows[:limit])
            return RunPage(runs, _cursor(runs[-1]) if len(rows) > limit else None)

        return await self._run(work)

    async def request_cancel(self, run_id: str) -> None:
        await self._run(lambda db: db.execute("UPDATE agw_runs SET cancel_requested = 1 WHERE run_id = ?", (run_id,)))

    async def cancels_requested(self, run_ids: Iterable[str]) -> set[str]:
        ids = list(run_ids)
        if not ids:
            return set()

        def work(db: sqlite3.Connection) -> set[str]:
            marks = ",".join("?" * len(ids))
            rows = db.execute(
                f"SELECT run_id FROM agw_runs WHERE cancel_requested = 1 AND run_id IN ({marks})", ids
            ).fetchall()
            return {str(r[0]) for r in rows}

        return await self._run(work)
