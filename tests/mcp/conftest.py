"""Real MCP tool servers (the official SDK) as subprocesses on ports they pick themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.helpers.mcp import ToolServer, start_tool_server


@pytest.fixture(scope="module")
def tool_servers() -> Iterator[Callable[[str], ToolServer]]:
    """``tool_servers(name)``: one server per name for the module, stopped at its end."""
    started: dict[str, ToolServer] = {}

    def get(name: str) -> ToolServer:
        if name not in started:
            started[name] = start_tool_server(name)
        return started[name]

    yield get
    for server in started.values():
        server.stop()
