"""The `state:` config section: defaults, validation, backend choice and startup failures."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, load_config_text
from gateway.model import Context
from gateway.server.app import GatewayServer
from gateway.state.access import ScopeAccess
from gateway.state.build import build_access, build_store
from gateway.state.redis import RedisStateStore
from gateway.state.sqlite import SqliteStateStore
from gateway.state.store import Scope, StateUnavailable


def test_defaults_are_a_sqlite_file_without_expiry() -> None:
    config = load_config_text("agents: {}\n", "gw.yaml", {})
    assert config.state is not None
    store = build_store(config.state)
    assert isinstance(store, SqliteStateStore) and store.path == "./agent-gateway-state.db"
    assert store.default_ttl == {} and store.limits.max_keys_per_scope == 10_000
    assert build_access(config.state).allow_explicit_scopes == frozenset()


def test_redis_backend_limits_ttl_and_grants() -> None:
    text = """
state:
  backend: redis
  redis: {url: "redis://127.0.0.1:6379/3", key_prefix: "team-a:"}
  limits: {max_value_bytes: 100, max_keys_per_scope: 5}
  ttl: {session: 2h, workflow: 90s}
  allow_explicit_scopes: [workflow, thread]
"""
    config = load_config_text(text, "gw.yaml", {})
    assert config.state is not None
    store = build_store(config.state)
    assert isinstance(store, RedisStateStore) and store.key_prefix == "team-a:"
    assert store.default_ttl == {Scope.SESSION: 7200.0, Scope.WORKFLOW: 90.0}
    assert store.limits.max_value_bytes == 100
    access = build_access(config.state)
    assert access.allow_explicit_scopes == {Scope.WORKFLOW, Scope.THREAD}
    assert access.resolve(Scope.THREAD, "any", Context()).id == "any"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("state: {backend: mongo}", "state.backend"),
        ("state: {ttl: {session: 0}}", "a default ttl must be positive"),
        ("state: {ttl: {session: soon}}", "state.ttl.session"),
        ("state: {allow_explicit_scopes: [galaxy]}", "state.allow_explicit_scopes[0]"),
        ("state: {redis: {url: 'http://127.0.0.1:6379'}}", "redis://"),
        ("state: {limits: {max_value_bytes: 0}}", "state.limits.max_value_bytes"),
        ("state: {sqlite: {file: x.db}}", "state.sqlite.file"),
    ],
)
def test_bad_state_config_names_the_path(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "gw.yaml", {})
    assert fragment in str(info.value) and "gw.yaml:1" in str(info.value)


def test_scope_access_is_the_callers_own_unless_granted() -> None:
    access = ScopeAccess([Scope.WORKFLOW])
    context = Context(session_id="s", thread_id="t", user_id="u", baggage={"agw.run": "r"})
    assert access.may_use_scope(Scope.SESSION, "s", context)
    assert not access.may_use_scope(Scope.SESSION, "other", context)
    assert access.may_use_scope(Scope.WORKFLOW, "any-run", context)
    assert access.resolve(Scope.WORKFLOW, "", context).id == "r"
    assert access.resolve(Scope.USER, "", context).id == "u"


async def test_gateway_start_fails_clearly_without_redis() -> None:
    text = (
        "listeners: {http: {address: '127.0.0.1:0'}, grpc: null}\nadmin: {address: '127.0.0.1:0'}\n"
        "state: {backend: redis, redis: {url: 'redis://127.0.0.1:1/0'}}\n"
    )
    server = GatewayServer(load_config_text(text, "gw.yaml", {}))
    try:
        with pytest.raises(StateUnavailable, match="unreachable"):
            await server.start()
    finally:
        assert server.state is not None
        await server.state.close()
        server.tracer_provider.shutdown()
