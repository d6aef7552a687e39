"""The workflow journal in SQLite: tables of its own in the state file."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from gateway.model import JSON
from gateway.runs.journal import JournaledRun, WorkflowJournal
from gateway.state.sqlite_db import SqliteDatabase, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agw_workflow_runs (
    run_id      TEXT PRIMARY KEY,
    record      TEXT NOT NULL,
    gateway_id  TEXT NOT NULL,
    lease_until REAL NOT NULL,
    finished    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS agw_workflow_runs_open ON agw_workflow_runs (lease_until) WHERE finished = 0;
CREATE TABLE IF NOT EXISTS agw_workflow_waits (
    run_id  TEXT NOT NULL,
    step    TEXT NOT NULL,
    pending TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agw_workflow_steps (
    run_id  TEXT NOT NULL,
    step    TEXT NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
"""


class SqliteWorkflowJournal(WorkflowJournal):
    def __init__(self, path: str | Path) -> None:
        self.db = SqliteDatabase(path, _SCHEMA, "workflow journal")

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def begin(self, run: JournaledRun, lease: float) -> None:
        until = time.time() + lease
        await self.db.run(
            lambda db: db.execute(
                "INSERT INTO agw_workflow_runs (run_id, record, gateway_id, lease_until) VALUES (?, ?, ?, ?)",
                (run.run_id, run.to_json(), run.gateway_id, until),
            )
        )

    async def record_step(self, run_id: str, step: str, outcome: JSON) -> None:
        await self.db.run(
            lambda db: db.execute(
                "INSERT OR IGNORE INTO agw_workflow_steps (run_id, step, outcome) VALUES (?, ?, ?)",
                (run_id, step, json.dumps(outcome)),
            )
        )

    async def steps(self, run_id: str) -> dict[str, JSON]:
        def work(db: sqlite3.Connection) -> dict[str, JSON]:
            rows = db.execute("SELECT step, outcome FROM agw_workflow_steps WHERE run_id = ?", (run_id,)).fetchall()
            return {str(step): json.loads(outcome) for step, outcome in rows}

        return await self.db.run(work)

    async def finish(self, run_id: str, outcome: JSON) -> None:
        def work(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT record FROM agw_workflow_runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return
            data = json.loads(row[0])
            data.update(finished=True, outcome=outcome)
            db.execute(
                "UPDATE agw_workflow_runs SET record = ?, finished = 1 WHERE run_id = ?", (json.dumps(data), run_id)
            )

        await self.db.run(work)

    async def get(self, run_id: str) -> JournaledRun | None:
        def work(db: sqlite3.Connection) -> JournaledRun | None:
            row = db.execute("SELECT record, gateway_id FROM agw_workflow_runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            data = json.loads(row[0])
            data["gateway_id"] = row[1]
            return JournaledRun(**data)

        return await self.db.run(work)

    async def renew(self, run_ids: list[str], gateway_id: str, lease: float) -> None:
        until = time.time() + lease
        await self.db.run(
            lambda db: db.executemany(
                "UPDATE agw_workflow_runs SET lease_until = ? WHERE run_id = ? AND gateway_id = ?",
                [(until, r, gateway_id) for r in run_ids],
            )
        )

    async def release(self, run_ids: list[str], gateway_id: str) -> None:
        await self.db.run(
            lambda db: db.executemany(
                "UPDATE agw_workflow_runs SET lease_until = 0 WHERE run_id = ? AND gateway_id = ?",
                [(r, gateway_id) for r in run_ids],
            )
        )

    async def put_wait(self, run_id: str, step: str, pending: JSON) -> JSON:
        def work(db: sqlite3.Connection) -> JSON:
            db.execute(
                "INSERT OR IGNORE INTO agw_workflow_waits (run_id, step, pending) VALUES (?, ?, ?)",
                (run_id, step, json.dumps(pending)),
            )
            row = db.execute(
                "SELECT pending FROM agw_workflow_waits WHERE run_id = ? AND step = ?", (run_id, step)
            ).fetchone()
            return json.loads(row[0])

        return await self.db.run(work)

    async def get_wait(self, run_id: str, step: str) -> JSON:
        def work(db: sqlite3.Connection) -> JSON:
            row = db.execute(
                "SELECT pending FROM agw_workflow_waits WHERE run_id = ? AND step = ?", (run_id, step)
            ).fetchone()
            return json.loads(row[0]) if row else None

        return await self.db.run(work)

    async def claim_lapsed(self, gateway_id: str, lease: float, limit: int = 16) -> list[JournaledRun]:
        now = time.time()

        def work(db: sqlite3.Connection) -> list[JournaledRun]:
            with transaction(db):
                rows = db.execute(
                    "SELECT run_id, record FROM agw_workflow_runs WHERE finished = 0 AND lease_until < ? LIMIT ?",
                    (now, limit),
                ).fetchall()
                db.executemany(
                    "UPDATE agw_workflow_runs SET gateway_id = ?, lease_until = ? WHERE run_id = ?",
                    [(gateway_id, now + lease, r) for r, _ in rows],
                )
            return [JournaledRun(**{**json.loads(record), "gateway_id": gateway_id}) for _, record in rows]

        return await self.db.run(work)
