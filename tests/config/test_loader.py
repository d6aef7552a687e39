from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config, load_config_text
from tests.helpers.paths import ROOT

BASE = """\
agents:
  echo:
    kind: http
    endpoint: http://127.0.0.1:9101
"""


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "gw.yaml", environ or {})
    return [str(p) for p in info.value.problems]


def test_example_config_loads() -> None:
    config = load_config(ROOT / "examples" / "gateway.yaml")
    assert set(config.agents) == {"echo", "echo-grpc"}
    assert config.routes[0].targets == ["echo", "echo-grpc"]
    assert config.agents["echo"].timeout == 30.0


def test_unknown_key_names_file_line_and_path() -> None:
    text = BASE + "    timeuot: 5s\n"
    assert problems(text) == ["gw.yaml:5: agents.echo.timeuot: unknown key (check the spelling; unknown keys are not ignored)"]


def test_bad_duration_and_weight_are_reported_together() -> None:
    text = BASE + """\
    timeout: soon
routes:
  - match: {agent: a}
    split:
      - {agent: echo, weight: -1}
"""
    found = problems(text)
    assert any(p.startswith("gw.yaml:5: agents.echo.timeout: expected a duration") for p in found), found
    assert any(p.startswith("gw.yaml:9: routes[0].split[0].weight:") for p in found), found


def test_route_needs_exactly_one_destination() -> None:
    text = BASE + "routes:\n  - match: {agent: a}\n    target: echo\n    split: [{agent: echo, weight: 1}]\n"
    assert problems(text) == ["gw.yaml:6: routes[0]: a route needs exactly one of 'target' or 'split'"]


def test_route_to_undefined_agent() -> None:
    text = BASE + "routes:\n  - match: {agent: a}\n    target: ghost\n"
    assert problems(text) == ["gw.yaml:7: routes[0].target: no agent or workflow named 'ghost' is defined under 'agents' or 'workflows'"]


def test_unknown_adapter_kind() -> None:
    found = problems("agents:\n  x:\n    kind: telepathy\n    endpoint: http://127.0.0.1:1\n")
    assert found[0].startswith("gw.yaml:3: agents.x.kind: unknown adapter kind 'telepathy' (known: ")


def test_adapter_options_are_validated_with_lines() -> None:
    text = BASE + "    options:\n      invoke_pth: /run\n"
    assert problems(text) == ["gw.yaml:6: agents.echo.options.invoke_pth: unknown key (check the spelling; unknown keys are not ignored)"]


def test_environment_substitution() -> None:
    text = BASE + "    options:\n      headers: {authorization: 'Bearer ${TOKEN}', x-env: '${MISSING:-dflt}', x-lit: '$$5'}\n"
    config = load_config_text(text, "gw.yaml", {"TOKEN": "s3cret"})
    assert config.agents["echo"].options["headers"] == {"authorization": "Bearer s3cret", "x-env": "dflt", "x-lit": "$5"}


def test_missing_environment_variable() -> None:
    text = BASE + "    options:\n      headers: {authorization: 'Bearer ${TOKEN}'}\n"
    assert problems(text) == [
        "gw.yaml:6: agents.echo.options.headers.authorization: environment variable TOKEN is not set "
        "(use ${TOKEN:-default} for a default)"
    ]


def test_duplicate_keys_are_errors() -> None:
    found = problems(BASE + "  echo:\n    kind: http\n    endpoint: http://127.0.0.1:1\n")
    assert found[0].startswith("gw.yaml:5: agents.echo: duplicate key")


def test_invalid_yaml_points_at_the_line() -> None:
    found = problems("agents:\n  echo: {kind: http\n  other: 1\n")
    assert found[0].startswith("gw.yaml:3: invalid YAML")


def test_bad_listener_address() -> None:
    found = problems("listeners:\n  http: {address: 'localhost'}\n")
    assert found == ["gw.yaml:2: listeners.http.address: expected HOST:PORT (for example 127.0.0.1:8080), got 'localhost'"]


def test_top_level_must_be_a_mapping() -> None:
    assert problems("- 1\n- 2\n") == ["gw.yaml:1: the top level must be a mapping (listeners, agents, routes)"]


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config("/nonexistent/gw.yaml")


def test_cli_validate(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(BASE)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "    retries: 3\n")
    ok = subprocess.run([sys.executable, "-m", "gateway", "validate", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0
    assert "OK (1 agents, 0 routes)" in ok.stdout
    fail = subprocess.run([sys.executable, "-m", "gateway", "validate", str(bad)], capture_output=True, text=True)
    assert fail.returncode == 2
    assert f"{bad}:5: agents.echo.retries: unknown key" in fail.stderr
    assert "Traceback" not in fail.stderr


def test_values_yaml_cannot_construct_are_config_errors() -> None:
    # Found by the fuzzer: a bare "=" is YAML's value tag, which the safe loader cannot build.
    with pytest.raises(ConfigError, match=r"x\.yaml:2: agents: cannot read this value"):
        load_config_text("listeners: {}\nagents: =\n", "x.yaml")


def test_boolean_looking_keys_are_reported() -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml:3: policies\.p: the key 'on' reads as a boolean in YAML; quote it"):
        load_config_text("policies:\n  p:\n    on: any\n", "x.yaml")


ALL_AT_ONCE = """\
agents:
  broken:
    kind: http
    endpoint: "no scheme here"
  odd:
    kind: carrier-pigeon
    endpoint: http://127.0.0.1:9102
  echo:
    kind: http
    endpoint: http://127.0.0.1:9101
    options:
      invoke_pth: /x
routes:
  - name: r1
    match: {agent: a}
    target: ghost
  - name: r2
    match: {agent: b}
    target: broken
    policies: [nope]
  - name: r1
    match: {agent: c}
    target: echo
"""


def test_every_problem_of_a_file_is_reported_in_one_run_sorted_by_line() -> None:
    # One bad endpoint used to hide the rest: four rounds of fixing for one file.
    found = problems(ALL_AT_ONCE)
    assert [p.split(":", 2)[1] for p in found] == sorted((p.split(":", 2)[1] for p in found), key=int)
    assert found[0].startswith("gw.yaml:4: agents.broken.endpoint: ")
    assert found[1:] == [
        "gw.yaml:6: agents.odd.kind: unknown adapter kind 'carrier-pigeon' (known: a2a, crewai, grpc, http, langgraph, mastra, mcp)",
        "gw.yaml:12: agents.echo.options.invoke_pth: unknown key (check the spelling; unknown keys are not ignored)",
        "gw.yaml:16: routes[0].target: no agent or workflow named 'ghost' is defined under 'agents' or 'workflows'",
        # routes[1] targets the agent with the bad endpoint: defined, only invalid, so not a second problem.
        "gw.yaml:20: routes[1].policies[0]: no policy named 'nope' is defined under 'policies'",
        "gw.yaml:21: routes[2].name: duplicate route name 'r1' (also routes[0])",
    ]


def test_problems_after_a_bad_list_entry_keep_their_own_index_and_line() -> None:
    text = BASE + """\
routes:
  - match: {agent: a}
    target: echo
    timeout: forever
  - match: {agent: b}
    target: ghost
"""
    assert problems(text) == [
        "gw.yaml:8: routes[0].timeout: " + problems(BASE + "routes:\n  - {match: {agent: a}, target: echo, timeout: forever}\n")[0].split(": ", 2)[2],
        "gw.yaml:10: routes[1].target: no agent or workflow named 'ghost' is defined under 'agents' or 'workflows'",
    ]


@pytest.mark.parametrize("form", [["run", "-c"], ["run"], ["validate", "-c"], ["validate"], ["validate", "--config"]])
def test_cli_takes_the_file_bare_or_with_c(tmp_path: Path, form: list[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "    retries: 3\n")
    done = subprocess.run([sys.executable, "-m", "gateway", *form, str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"{bad}:5: agents.echo.retries: unknown key" in done.stderr
