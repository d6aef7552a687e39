"""The `mcp:` section: upstreams and virtual servers, each mistake reported at its file and line."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, load_config_text

GOOD = """\
policies:
  tools:
    timeout: {per_try: 2s}
mcp:
  upstreams:
    weather:
      url: http://127.0.0.1:9/mcp
      headers: {authorization: Bearer upstream-token}
      policies: [tools]
      idempotent_tools: [forecast]
    files:
      command: python
      args: [-m, files]
      env: {ROOT: /tmp}
  virtual_servers:
    tools:
      upstreams:
        - {upstream: weather, allow: ["get_*"], deny: [get_secret]}
        - {upstream: files, prefix: fs}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "gw.yaml", {})
    return [str(p) for p in info.value.problems]


def test_upstreams_and_virtual_servers_load() -> None:
    config = load_config_text(GOOD, "gw.yaml", {})
    assert config.mcp.upstreams["weather"].headers == {"authorization": "Bearer upstream-token"}
    assert config.mcp.upstreams["files"].args == ["-m", "files"]
    members = config.mcp.virtual_servers["tools"].upstreams
    assert [m.name_prefix for m in members] == ["weather_", "fs_"]


def test_url_or_command_exactly_one() -> None:
    text = "mcp:\n  upstreams:\n    both:\n      url: http://127.0.0.1:9/mcp\n      command: python\n"
    assert problems(text) == [
        "gw.yaml:3: mcp.upstreams.both: give exactly one of 'url' (Streamable HTTP) or 'command' (stdio)"
    ]


def test_undefined_upstream_and_policy_are_reported_at_their_lines() -> None:
    text = """\
mcp:
  upstreams:
    weather:
      url: http://127.0.0.1:9/mcp
      policies: [missing]
  virtual_servers:
    tools:
      upstreams:
        - {upstream: ghost}
"""
    assert problems(text) == [
        "gw.yaml:5: mcp.upstreams.weather.policies[0]: no policy named 'missing' is defined under 'policies'",
        "gw.yaml:9: mcp.virtual_servers.tools.upstreams[0].upstream: "
        "no MCP upstream named 'ghost' is defined under 'mcp.upstreams'",
    ]


def test_shared_prefix_is_refused() -> None:
    text = GOOD.replace("prefix: fs", "prefix: weather")
    found = problems(text)
    assert len(found) == 1 and "share the prefix 'weather_'" in found[0] and found[0].startswith("gw.yaml:"), found


def test_unknown_key_is_an_error() -> None:
    text = GOOD.replace("idempotent_tools", "idempotent_tool")
    assert any("mcp.upstreams.weather.idempotent_tool: unknown key" in p for p in problems(text))
