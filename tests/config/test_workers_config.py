"""server.workers > 1: what the worker processes cannot share is refused at load, at its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import ConfigError, load_config, load_config_text
from gateway.config.workers import worker_caveats

AGENT = "agents:\n  echo: {kind: http, endpoint: 'http://127.0.0.1:9'}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as failure:
        load_config_text(text, "gw.yaml", {})
    return [str(p) for p in failure.value.problems]


def test_one_worker_is_the_default_and_many_load_with_shared_backends() -> None:
    assert load_config_text(AGENT, "gw.yaml", {}).server.workers == 1
    config = load_config_text(AGENT + "server: {workers: 4}\nstate: {sqlite: {path: /tmp/x.db}}\n", "gw.yaml", {})
    assert config.server.workers == 4


def test_the_memory_bus_with_triggers_is_refused_at_its_line() -> None:
    text = (
        AGENT
        + "server:\n  workers: 2\n"
        + "bus:\n  backend: memory\n"
        + "triggers:\n  - {name: t1, subject: events.a, agent: echo}\n"
    )
    [problem] = problems(text)
    assert problem.startswith("gw.yaml:6: bus.backend: server.workers is 2")
    assert "triggers[0] would see only the events published to their own worker" in problem
    assert "bus.backend: nats" in problem
    # The same file with the nats bus, or one worker, loads.
    load_config_text(text.replace("backend: memory", "backend: nats"), "gw.yaml", {})
    load_config_text(text.replace("workers: 2", "workers: 1"), "gw.yaml", {})


def test_the_memory_bus_without_consumers_is_fine() -> None:
    load_config_text(AGENT + "server: {workers: 2}\n", "gw.yaml", {})


def test_state_in_one_process_is_refused() -> None:
    [problem] = problems(AGENT + "server: {workers: 2}\nstate: null\n")
    assert problem.startswith("gw.yaml:4: state: server.workers is 2")
    assert "task not found" in problem
    [problem] = problems(AGENT + "server: {workers: 3}\nstate:\n  sqlite:\n    path: ':memory:'\n")
    assert problem.startswith("gw.yaml:6: state.sqlite.path: server.workers is 3")


def test_workers_must_be_positive() -> None:
    [problem] = problems(AGENT + "server: {workers: 0}\n")
    assert problem.startswith("gw.yaml:3: server.workers:")


def test_the_command_line_override_is_checked_like_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(AGENT + "state: null\n")
    assert load_config(config).server.workers == 1
    with pytest.raises(ConfigError):
        load_config(config, overrides={("server", "workers"): 2})
    assert main(["run", "-c", str(config), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert f"{config}:3: state: server.workers is 2" in err


def test_what_is_counted_per_worker_is_told() -> None:
    text = (
        AGENT
        + "server: {workers: 3}\n"
        + "policies:\n  default: {circuit_breaker: {consecutive_failures: 2}, concurrency: {max_in_flight: 5}}\n"
        + "security:\n  rate_limits: [{identities: ['*'], rate: 10, burst: 10}]\n"
    )
    caveats = worker_caveats(load_config_text(text, "gw.yaml", {}))
    assert any("policies default are per worker (storage: memory)" in c for c in caveats), caveats
    assert any("up to 3 times its limit" in c for c in caveats), caveats
    assert any("up to 3 times max_in_flight" in c for c in caveats), caveats
    assert worker_caveats(load_config_text(text.replace("workers: 3", "workers: 1"), "gw.yaml", {})) == []
