"""Framework servers in tests: requiring a framework's environment, starting its server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.frameworks import envs
from tests.frameworks.apps import SERVERS
from tests.frameworks.servers import ServerProcess

# Servers started right after collection (tests/frameworks/conftest.py), taken by the first module using each.
launched_early: dict[str, ServerProcess] = {}


def _progress(config: pytest.Config) -> Callable[[str], None]:
    """Print build progress past pytest's capture: a first build takes minutes, say so."""
    capture = config.pluginmanager.getplugin("capturemanager")

    def log(line: str) -> None:
        if capture is None:
            print(line)
            return
        with capture.global_and_fixture_disabled():
            print(f"\n[frameworks] {line}", flush=True)

    return log


def require_env(config: pytest.Config, framework: str) -> Path:
    """The framework environment's python; skips (fails under CI=true) when it cannot be built."""
    try:
        return envs.ensure_env(framework, log=_progress(config))
    except envs.EnvUnavailable as exc:
        reason = f"the {framework} test environment could not be built (run `make frameworks`): {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def framework_server(name: str, config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """The named server, ready: launched early when possible, else built and started now."""
    framework, launch = SERVERS[name]
    if framework is not None:
        require_env(config, framework)
    server = launched_early.pop(name, None)
    if server is None:
        workdir = tmp_path_factory.mktemp(name)
        server = launch(workdir, workdir / "server.log")
    return server.wait_ready()
