"""Fixtures shared by the framework tests: per-framework environments and server logs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.frameworks import envs


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


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where framework servers write their logs (shown in failures via ServerProcess.log_tail)."""
    return tmp_path_factory.mktemp("framework-logs")
