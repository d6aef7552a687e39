"""The run store of the configured state backend (``state.backend``)."""

from __future__ import annotations

from gateway.config.schema import RunsConfig, StateConfig
from gateway.runs.journal import WorkflowJournal
from gateway.runs.store import RunStore


def build_run_store(state: StateConfig, runs: RunsConfig) -> RunStore:
    """An unopened store beside the state service: the same SQLite file or the same Redis."""
    if state.backend == "redis":
        from gateway.runs.redis import RedisRunStore

        return RedisRunStore(state.redis.url, runs.retention, key_prefix=runs.key_prefix)
    from gateway.runs.sqlite import SqliteRunStore

    return SqliteRunStore(state.sqlite.path, runs.retention)


def build_journal(state: StateConfig, runs: RunsConfig) -> WorkflowJournal:
    """An unopened journal of durable workflow runs, in tables/keys of its own beside the runs."""
    if state.backend == "redis":
        from gateway.runs.journal_redis import RedisWorkflowJournal

        return RedisWorkflowJournal(state.redis.url, key_prefix=runs.key_prefix, retention=runs.retention)
    from gateway.runs.journal_sqlite import SqliteWorkflowJournal

    return SqliteWorkflowJournal(state.sqlite.path)
