"""The configured state store and scope access, built from ``state:`` in the YAML."""

from __future__ import annotations

from gateway.config.schema import StateConfig
from gateway.state.access import ScopeAccess
from gateway.state.store import Scope, StateLimits, StateStore


def build_store(config: StateConfig) -> StateStore:
    """An unopened store of the configured backend (the caller opens and closes it)."""
    limits = StateLimits(config.limits.max_value_bytes, config.limits.max_keys_per_scope)
    default_ttl = {scope: ttl for scope in Scope if (ttl := getattr(config.ttl, scope.value)) is not None}
    if config.backend == "redis":
        # Imported here so a SQLite-only gateway never loads the Redis client.
        from gateway.state.redis import RedisStateStore

        return RedisStateStore(config.redis.url, limits, default_ttl, key_prefix=config.redis.key_prefix)
    from gateway.state.sqlite import SqliteStateStore

    return SqliteStateStore(config.sqlite.path, limits, default_ttl)


def build_access(config: StateConfig) -> ScopeAccess:
    return ScopeAccess(Scope(name) for name in config.allow_explicit_scopes)
