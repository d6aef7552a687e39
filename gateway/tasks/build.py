"""The A2A task store of the configured state backend (``state.backend``)."""

from __future__ import annotations

from gateway.config.schema import RunsConfig, StateConfig
from gateway.tasks.store import TaskStore


def build_task_store(state: StateConfig | None, runs: RunsConfig) -> TaskStore:
    """An unopened store beside the runs: the same SQLite file or Redis; in memory without state."""
    from gateway.tasks.sqlite import SqliteTaskStore

    if state is None:
        return SqliteTaskStore(":memory:", runs.retention)
    if state.backend == "redis":
        from gateway.tasks.redis import RedisTaskStore

        return RedisTaskStore(state.redis.url, runs.retention, key_prefix=runs.key_prefix)
    return SqliteTaskStore(state.sqlite.path, runs.retention)
