"""The shared state service."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.base import Duration, Strict

StateScopeName = Literal["session", "thread", "user", "workflow"]


class SqliteState(Strict):
    # A file (created with its folders), or ":memory:" for a store that dies with the process.
    path: str = "./agent-gateway-state.db"


class RedisState(Strict):
    # The Redis server (redis://, rediss:// or unix://).
    url: str = "redis://127.0.0.1:6379/0"
    # Every key the gateway writes starts with this; give each deployment its own.
    key_prefix: str = Field(default="agw:state:", min_length=1)

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {value!r}")
        return value


class StateLimits(Strict):
    # The largest value one key may hold.
    max_value_bytes: int = Field(default=1024 * 1024, gt=0)
    # The most keys one scope (a session, a user...) may hold.
    max_keys_per_scope: int = Field(default=10_000, gt=0)


class StateTtl(Strict):
    """The default time to live of a key per scope when a write sets none (unset: forever)."""

    # Keys of session scopes.
    session: Duration | None = None
    # Keys of thread scopes.
    thread: Duration | None = None
    # Keys of user scopes.
    user: Duration | None = None
    # Keys of workflow scopes.
    workflow: Duration | None = None

    @model_validator(mode="after")
    def _positive(self) -> StateTtl:
        for scope in ("session", "thread", "user", "workflow"):
            if getattr(self, scope) == 0:
                raise ValueError(f"{scope}: a default ttl must be positive (leave it out for no expiry)")
        return self


class StateConfig(Strict):
    """The shared state service (``/v1/state`` and the StateService RPCs)."""

    # Where state lives: a SQLite file (one gateway) or Redis (a fleet).
    backend: Literal["sqlite", "redis"] = "sqlite"
    # backend: sqlite.
    sqlite: SqliteState = Field(default_factory=SqliteState)
    # backend: redis.
    redis: RedisState = Field(default_factory=RedisState)
    # Bounds on what callers may store.
    limits: StateLimits = Field(default_factory=StateLimits)
    # Default times to live per scope.
    ttl: StateTtl = Field(default_factory=StateTtl)
    # Scopes whose id a caller may name explicitly even when it is not its own
    # (for example `workflow`, for an orchestrator that reads a run it started).
    allow_explicit_scopes: list[StateScopeName] = Field(default_factory=list)
