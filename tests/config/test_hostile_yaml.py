"""Hostile YAML: alias bombs, recursive aliases and deep nesting are ConfigErrors naming file and
line, within a second (issue 15, defect 9). Each load runs in a child process with a memory cap and a
timeout, so a regression fails the test instead of eating the machine."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

LOAD = """
import json, sys, time
from gateway.config import ConfigError, load_config_text
text = sys.stdin.read()
start = time.process_time()
try:
    load_config_text(text, "hostile.yaml", {})
    outcome = {"loaded": True}
except ConfigError as exc:
    outcome = {"problems": [str(p) for p in exc.problems], "lines": [p.line for p in exc.problems]}
except BaseException as exc:
    outcome = {"crash": f"{type(exc).__name__}: {exc}"[:300]}
outcome["cpu"] = time.process_time() - start
print(json.dumps(outcome))
"""


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))


def load_in_child(text: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", LOAD], input=text, capture_output=True, text=True, timeout=30, cwd=ROOT,
        preexec_fn=_cap_memory,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcome: dict[str, Any] = json.loads(done.stdout)
    return outcome


def billion_laughs() -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
    return text


CASES = {
    "billion laughs": (billion_laughs(), "aliases are expanded"),
    "recursive alias": ("agents: &a {x: *a}\n", "recursive alias"),
    "recursive alias in a list": ("listeners: {}\nagents:\n  echo: &e\n    - *e\n", "recursive alias"),
    "5,000 deep flow": ("agents: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),
    "5,000 deep block": ("agents:\n  " + "- " * 5000 + "x\n", "nested more than"),
    "deep through aliases": (
        "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200)),
        "nested more than",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_yaml_is_a_config_error_within_a_second(case: str) -> None:
    text, reason = CASES[case]
    assert len(text.encode()) < 64 * 1024
    outcome = load_in_child(text)
    assert "crash" not in outcome, outcome
    assert "problems" in outcome, outcome
    assert any(reason in p for p in outcome["problems"]), outcome
    assert all(p.startswith("hostile.yaml:") for p in outcome["problems"]), outcome
    assert all(isinstance(line, int) and line >= 1 for line in outcome["lines"]), outcome
    # CPU time, not wall time: a busy machine does not make it flaky.
    assert outcome["cpu"] < 1.0, outcome


def test_the_kilobyte_bomb_is_small() -> None:
    assert len(billion_laughs()) < 1024


def test_ordinary_aliases_still_work() -> None:
    text = (
        "policies:\n  quick: &quick {timeout: {per_try: 2s}}\n  quick2: *quick\n"
        "agents:\n  echo: {kind: http, endpoint: 'http://127.0.0.1:9', policies: [quick, quick2]}\n"
    )
    outcome = load_in_child(text)
    assert outcome.get("loaded") is True, outcome
