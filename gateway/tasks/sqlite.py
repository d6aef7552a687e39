"""A2A tasks in SQLite: the state file (``state.sqlite.path``), so tasks survive a restart.

Tables of their own (``agw_a2a_tasks``, ``agw_a2a_push_configs``) beside the
runs'; one connection on one thread, as :mod:`gateway.runs.sqlite`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from gateway.model import JSON
from gateway.state.sqlite_db import SqliteBacked, SqliteDatabase, transaction
from gateway.tasks.store import TERMINAL, TaskPage, TaskQuery, TaskRecord, TaskStore, cursor_of, parse_cursor

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agw_a2a_tasks (
    task_id    TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    agent      TEXT NOT NULL,
    context_id TEXT NOT NULL,
    state      TEXT NOT NULL,
    updated_at REAL NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS agw_a2a_tasks_owner ON agw_a2a_tasks (owner, agent, updated_at DESC, task_id DESC);
CREATE TABLE IF NOT EXISTS agw_a2a_push_configs (
    task_id    TEXT NOT NULL,
    config_id  TEXT NOT NULL,
    created_at REAL NOT NULL,
    config     TEXT NOT NULL,
    PRIMARY KEY (task_id, config_id)
) WITHOUT ROWID;
"""
SWEEP_INTERVAL = 300.0
_TERMINAL_MARKS = ",".join("?" * len(TERMINAL))


class SqliteTaskStore(SqliteBacked, TaskStore):
    """Tasks in a SQLite file (``:memory:`` for tasks that die with the process)."""

    def __init__(self, path: str | Path, retention: float, *, sweep_interval: float = SWEEP_INTERVAL) -> None:
        super().__init__(retention)
        self.sweep_interval = sweep_interval
        self.db = SqliteDatabase(path, _SCHEMA, "a2a-tasks")

    async def sweep(self) -> int:
        """Forget tasks finished longer than ``retention`` ago; returns how many."""
        cutoff = time.time() - self.retention
        terminal = sorted(TERMINAL)

        def work(db: sqlite3.Connection) -> int:
            with transaction(db):
                db.execute(
                    "DELETE FROM agw_a2a_push_configs WHERE task_id IN (SELECT task_id FROM agw_a2a_tasks"
                    f" WHERE updated_at < ? AND state IN ({_TERMINAL_MARKS}))",
                    (cutoff, *terminal),
                )
                return db.execute(
                    f"DELETE FROM agw_a2a_tasks WHERE updated_at < ? AND state IN ({_TERMINAL_MARKS})",
                    (cutoff, *terminal),
                ).rowcount

        return await self._run(work)

    async def save(self, record: TaskRecord) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO agw_a2a_tasks (task_id, owner, agent, context_id, state, updated_at, record)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET"
                " state = excluded.state, updated_at = excluded.updated_at, record = excluded.record",
                (
                    record.task_id,
                    record.owner,
                    record.agent,
                    record.context_id,
                    record.state,
                    record.updated_at,
                    record.to_json(),
                ),
            )

        await self._run(work)

    async def get(self, task_id: str) -> TaskRecord | None:
        def work(db: sqlite3.Connection) -> TaskRecord | None:
            row = db.execute("SELECT record FROM agw_a2a_tasks WHERE task_id = ?", (task_id,)).fetchone()
            return TaskRecord.from_json(row[0]) if row else None

        return await self._run(work)

    async def list(self, query: TaskQuery) -> TaskPage:
        where = ["owner = ?", "agent = ?"]
        args: list[object] = [query.owner, query.agent]
        if query.context_id:
            where.append("context_id = ?")
            args.append(query.context_id)
        if query.state:
            where.append("state = ?")
            args.append(query.state)
        if query.updated_after is not None:
            where.append("updated_at > ?")
            args.append(query.updated_after)
        filters = " AND ".join(where)
        page_where, page_args = filters, list(args)
        if query.cursor:
            updated, task_id = parse_cursor(query.cursor)
            page_where += " AND (updated_at < ? OR (updated_at = ? AND task_id < ?))"
            page_args += [updated, updated, task_id]

        def work(db: sqlite3.Connection) -> TaskPage:
            total = int(db.execute(f"SELECT COUNT(*) FROM agw_a2a_tasks WHERE {filters}", args).fetchone()[0])
            rows = db.execute(
                f"SELECT record FROM agw_a2a_tasks WHERE {page_where} ORDER BY updated_at DESC, task_id DESC LIMIT ?",
                [*page_args, query.page_size + 1],
            ).fetchall()
            tasks = tuple(TaskRecord.from_json(r[0]) for r in rows[: query.page_size])
            more = len(rows) > query.page_size
            return TaskPage(tasks, cursor_of(tasks[-1]) if more and tasks else "", total)

        return await self._run(work)

    async def save_push_config(self, task_id: str, config_id: str, config: JSON) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO agw_a2a_push_configs (task_id, config_id, created_at, config) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (task_id, config_id) DO UPDATE SET config = excluded.config",
                (task_id, config_id, time.time(), json.dumps(config)),
            )

        await self._run(work)

    async def push_configs(self, task_id: str) -> Sequence[tuple[str, JSON]]:
        def work(db: sqlite3.Connection) -> list[tuple[str, JSON]]:
            rows = db.execute(
                "SELECT config_id, config FROM agw_a2a_push_configs WHERE task_id = ? ORDER BY created_at, config_id",
                (task_id,),
            ).fetchall()
            return [(str(c), json.loads(v)) for c, v in rows]

        return await self._run(work)

    async def delete_push_config(self, task_id: str, config_id: str) -> None:
        await self._run(
            lambda db: db.execute(
                "DELETE FROM agw_a2a_push_configs WHERE task_id = ? AND config_id = ?", (task_id, config_id)
            )
        )
