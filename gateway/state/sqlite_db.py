"""One SQLite database owned by one thread, for the stores kept in SQLite (state, runs, tasks, journal).

sqlite3 objects must stay on the thread that made them, so one worker thread holds
the connection and every piece of work runs there; the event loop only awaits it.
WAL with synchronous=FULL: a committed write survives a crash of the process or machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE: take the write lock up front, so a read-then-write is atomic
    even with other processes on the same file."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SqliteDatabase:
    def __init__(self, path: str | Path, schema: str, name: str) -> None:
        self.path = str(path)
        self.schema = schema
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"agw-{name}-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` with the connection on the database's thread."""

        def call() -> T:
            if self._connection is None:
                raise RuntimeError(f"the SQLite {self.name} store is not open")
            return work(self._connection)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def open(self) -> None:
        def connect() -> None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA busy_timeout=5000")
            connection.executescript(self.schema)
            self._connection = connection

        await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def open_swept(self, interval: float, sweep: Callable[[], Awaitable[object]]) -> None:
        """Open, sweep at once (what expired while no gateway ran), then every ``interval`` seconds."""
        await self.open()
        await sweep()
        self.sweep_every(interval, sweep)

    def sweep_every(self, interval: float, sweep: Callable[[], Awaitable[object]]) -> None:
        """Call ``sweep`` every ``interval`` seconds until closed (0: never)."""
        if interval <= 0:
            return

        async def forever() -> None:
            while True:
                await asyncio.sleep(interval)
                await sweep()

        self._sweeper = asyncio.create_task(forever(), name=f"agw-{self.name}-sweep")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

        def disconnect() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await asyncio.get_running_loop().run_in_executor(self._executor, disconnect)
        self._executor.shutdown(wait=True)


class SqliteBacked:
    """What every SQLite-backed store shares: its one database, work run on the database's
    thread, opened with the store's periodic ``sweep``, closed with it."""

    db: SqliteDatabase
    sweep_interval: float

    async def sweep(self) -> int:
        raise NotImplementedError

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self.db.run(work)

    async def open(self) -> None:
        await self.db.open_swept(self.sweep_interval, self.sweep)

    async def close(self) -> None:
        await self.db.close()
