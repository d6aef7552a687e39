"""`agent-gateway eval`: a dataset through a workflow, the report, JUnit XML and comparisons."""

from __future__ import annotations

import asyncio
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import Starter
from tests.patterns.scripted import ScriptedAgents, agents_yaml

WORKFLOW = """
workflows:
  pipeline:
    kind: sequential
    steps:
      - {name: shout, agent: upper}
      - {name: measure, agent: count, input: "{{ steps.shout.text }}"}
checks:
  counted: {kind: required_fields, fields: [length]}
"""

DATASET = [
    {"id": "otters", "input": "otters", "checks": ["counted"], "expect": {"contains": "6 chars"},
     "steps": {"shout": {"equals": "OTTERS"}}},
    {"id": "long", "input": "a longer sentence", "expect": {"regex": "^17 chars$"},
     "steps": {"shout": {"contains": "SENTENCE"}, "measure": {"required_fields": ["length"]}}},
    {"id": "wrong", "input": "cats", "expect": {"contains": "99 chars"}},
    {"id": "shape", "input": "x", "expect": {"json_schema": {"type": "object", "required": ["length"]},
                                             "length": {"max": 10}}},
]


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "eval", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_offline_eval_report(tmp_path: Path, serve_app: Starter) -> None:
    agents = ScriptedAgents()
    url = await serve_app(agents.app())
    config = tmp_path / "gw.yaml"
    config.write_text(agents_yaml(url) + WORKFLOW)
    dataset = tmp_path / "cases.jsonl"
    dataset.write_text("\n".join(json.dumps(case) for case in DATASET) + "\n")
    report_path, junit_path = tmp_path / "report.json", tmp_path / "junit.xml"

    code, out, err = await run_cli("-c", str(config), "--target", "pipeline", "--dataset", str(dataset),
                                   "--concurrency", "2", "--json", str(report_path), "--junit", str(junit_path))
    assert code == 1, err  # one case fails: below the default --fail-under 1.0
    report = json.loads(report_path.read_text())
    assert (report["cases"], report["passed"], report["pass_rate"]) == (4, 3, 0.75)
    assert {r["id"]: r["passed"] for r in report["results"]} == {"otters": True, "long": True, "wrong": False,
                                                                  "shape": True}
    assert set(report["steps"]) == {"shout", "measure"}
    assert report["steps"]["shout"]["pass_rate"] == 1.0
    assert report["steps"]["shout"]["runs"] == 4
    assert report["checks"]["shout:equals"] == {"runs": 1, "passed": 1, "pass_rate": 1.0}
    assert report["latency_ms"]["p50"] > 0
    assert "pipeline" in out and "step shout" in out and "75%" in out
    assert len([c for c in agents.calls if c[0] == "upper"]) == 4

    suite = ET.parse(junit_path).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("4", "1")
    failed = [case for case in suite if case.find("failure") is not None]
    assert [case.get("name") for case in failed] == ["wrong"]
    assert "contains: does not contain '99 chars'" in (failed[0].find("failure").text or "")  # type: ignore[union-attr]

    # The same run compared with itself shows no regression; a better baseline does.
    code, out, _ = await run_cli("-c", str(config), "--target", "pipeline", "--dataset", str(dataset),
                                 "--compare", str(report_path), "--fail-under", "0.5", "--latency-tolerance", "100")
    assert code == 0, out
    baseline = json.loads(report_path.read_text())
    baseline["pass_rate"] = 1.0
    better = tmp_path / "better.json"
    better.write_text(json.dumps(baseline))
    code, out, _ = await run_cli("-c", str(config), "--target", "pipeline", "--dataset", str(dataset),
                                 "--compare", str(better), "--fail-under", "0.5", "--latency-tolerance", "100")
    assert code == 1
    assert "regression: pipeline: pass rate 100% -> 75%" in out


async def test_bad_datasets_and_targets_are_clear(tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text("agents:\n  a: {kind: http, endpoint: 'http://127.0.0.1:1'}\n")
    dataset = tmp_path / "bad.jsonl"
    dataset.write_text('{"input": "ok"}\n{not json}\n')
    code, _, err = await run_cli("-c", str(config), "--target", "a", "--dataset", str(dataset))
    assert code == 2
    assert f"{dataset}:2: not JSON" in err
    code, _, err = await run_cli("-c", str(config), "--target", "ghost", "--dataset", str(dataset))
    assert code == 2
    assert "unknown target 'ghost'" in err
    assert "Traceback" not in err
