"""Fixtures shared by the framework tests: per-framework environments and their servers.

Framework servers take seconds to start (importing CrewAI alone takes about
5 s), so when framework tests are collected and their environments are
already built, the servers are launched right after collection and start while
the earlier tests run; the fixtures then only wait for readiness.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.frameworks import envs
from tests.frameworks.apps import MODULE_SERVERS, SERVERS
from tests.frameworks.servers import ServerProcess
from tests.helpers.frameworks import framework_server, launched_early

_early_dirs: list[Path] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    modules = {
        getattr(item, "module", None).__name__.rsplit(".", 1)[-1]  # type: ignore[union-attr]
        for item in session.items
        if item.get_closest_marker("frameworks") and getattr(item, "module", None) is not None
    }
    for module in sorted(modules):
        for name in MODULE_SERVERS.get(module, ()):
            if name in launched_early:
                continue  # the first module to use it takes the early one; later ones start their own
            framework, launch = SERVERS[name]
            if framework is not None and not envs.is_current(framework):
                continue  # the fixture builds the environment (or skips) and starts the server itself
            workdir = Path(tempfile.mkdtemp(prefix=f"agw-{name}-"))
            _early_dirs.append(workdir)
            launched_early[name] = launch(workdir, workdir / "server.log")


def pytest_sessionfinish(session: pytest.Session) -> None:
    for server in launched_early.values():
        server.stop(grace=1)
    for workdir in _early_dirs:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def langgraph_server(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The langgraph test server, one per test module that uses it."""
    server = framework_server("langgraph", pytestconfig, tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def crew_server(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The crewai test server, one per test module that uses it."""
    server = framework_server("crewai", pytestconfig, tmp_path_factory)
    yield server
    server.stop(grace=0.5)  # a slow crew's worker thread would hold a graceful exit for seconds


@pytest.fixture(scope="module")
def mastra_server(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The mastra test server, one per test module that uses it."""
    server = framework_server("mastra", pytestconfig, tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def a2a_server(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The a2a test server, one per test module that uses it."""
    server = framework_server("a2a", pytestconfig, tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pydantic_ai_server(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The Pydantic AI A2A server (FastA2A), one per test module that uses it."""
    server = framework_server("pydantic_ai", pytestconfig, tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def adk_server(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The Google ADK A2A server (``to_a2a()``), one per test module that uses it."""
    server = framework_server("adk", pytestconfig, tmp_path_factory)
    yield server
    server.stop(grace=1)
