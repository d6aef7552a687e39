"""The benchmark harness works end to end: one quick scenario (latency at
concurrency 1, a few requests, the Python client) with real processes on
loopback. Asserts the shape and sanity of the results, never timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import parse_args
from bench.stats import percentile

ROOT = Path(__file__).resolve().parents[2]


def test_quick_latency_scenario_reports_ratios(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    argv = [
        *("--quick", "--only", "latency", "--fronts", "http", "--client", "python"),
        *("--concurrency", "1", "--requests", "30", "--out", str(out)),
    ]
    run = subprocess.run([sys.executable, "-m", "bench", *argv], cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Added latency per hop" in run.stdout
    document = json.loads(out.read_text())
    assert document["meta"]["quick"] is True
    assert set(document["meta"]["pinning"]) == {"proxy", "upstream", "client"}
    scenario = document["scenarios"]["latency"]
    assert scenario["skipped"] is None
    [row] = scenario["rows"]
    assert (row["front"], row["concurrency"], row["client"]) == ("http", 1, "python")
    assert row["errors"] == 0
    assert 0 < row["requests"] <= 3 * 30  # direct, gateway, the bare Python proxy (nginx is left out of quick runs)
    assert row["bare_added_p50_ms"] is not None
    for key in ("direct_p50_ms", "gateway_p50_ms", "direct_p99_ms", "gateway_p99_ms", "p50_ratio"):
        assert row[key] > 0, key
    assert row["added_p50_ms"] == pytest.approx(row["gateway_p50_ms"] - row["direct_p50_ms"])


def test_unknown_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--only", "latency,nope"])
    assert exit_info.value.code == 2
    assert "unknown scenario(s) nope" in capsys.readouterr().err


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 50) == 0.0


def test_quick_cpu_scenarios_report_every_reference_and_the_goals(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    # HTTP only, to stay short: the gRPC reference proxy has its own test (test_references.py).
    argv = [*("--quick", "--only", "cpu,stream_cpu", "--fronts", "http", "--client", "python", "--requests", "40")]
    argv += ["--out", str(out)]
    run = subprocess.run([sys.executable, "-m", "bench", *argv], cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert run.returncode == 0, run.stderr[-2000:]
    document = json.loads(out.read_text())
    rows = document["scenarios"]["cpu"]["rows"]
    targets = {(row["front"], row["target"]) for row in rows}
    expected = {
        *(("http", t) for t in ("direct", "bare-python", "aiohttp-proxy", "gateway-invoke", "gateway-invoke-chain")),
        ("http", "gateway-passthrough"),
        # The same gateway on aiohttp's server (server.http_server: aiohttp), side by side.
        *(("http", f"{t}-aiohttp-server") for t in ("gateway-invoke-chain", "gateway-passthrough")),
    }
    assert expected <= targets <= expected | {("http", "nginx")}  # nginx when installed
    for row in rows:
        assert row["errors"] == 0, row
        assert row["rps"] > 0, row
        assert row["upstream_us"] is not None and row["upstream_us"] >= 0, row
        # Direct calls have no proxy; every proxy row has its own CPU figure.
        assert (row["cpu_us"] is None) == (row["target"] == "direct"), row
    bare = next(r for r in rows if r["target"] == "bare-python")
    assert bare["cpu_vs_bare"] in (1.0, None)  # None only if its CPU was below one clock tick
    streams = document["scenarios"]["stream_cpu"]["rows"]
    shapes = {(row["shape"], row["target"]): row for row in streams}
    for shape, events in (("burst", 2000), ("spaced", 500)):
        for target in ("direct", "passthrough", "typed"):
            assert shapes[shape, target]["events"] == events, (shape, target)
    goals = {row["goal"]: row for row in document["scenarios"]["goals"]["rows"]}
    assert len(goals) == 12
    assert goals["2 workers / 1 worker rps on 2 cores (--workers)"]["met"] == "not measured"
    assert goals["idle RSS (MB)"]["met"] == "not measured"  # scale did not run
    assert "Goals (issue 19)" in run.stdout


def test_quick_workers_scenario_compares_two_workers_with_one(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    argv = [*("--quick", "--only", "workers", "--fronts", "http", "--client", "python", "--requests", "60")]
    run = subprocess.run(
        [sys.executable, "-m", "bench", *argv, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=110
    )
    assert run.returncode == 0, run.stderr[-2000:]
    scenario = json.loads(out.read_text())["scenarios"]["workers"]
    if scenario["skipped"]:
        assert "needs 2 CPUs" in scenario["skipped"]
        return
    one, two = scenario["rows"]
    assert (one["workers"], two["workers"]) == (1, 2)
    for row in (one, two):
        assert row["errors"] == 0 and row["rps"] > 0, row
    assert one["rps_ratio"] == 1.0 and two["rps_ratio"] == pytest.approx(two["rps"] / one["rps"])
    split = [int(n) for n in two["split"].split("/")]
    assert len(split) == 2 and sum(split) > 0
    goals = {row["goal"]: row for row in json.loads(out.read_text())["scenarios"]["goals"]["rows"]}
    assert goals["2 workers / 1 worker rps on 2 cores (--workers)"]["measured"] == two["rps_ratio"]
