"""The goals table reads the right rows and judges each against its goal."""

from __future__ import annotations

from bench.goals import GOALS, evaluate
from bench.harness import ScenarioResult


def test_goals_are_judged_from_the_rows_of_the_run() -> None:
    cpu = ScenarioResult(
        "cpu",
        "",
        rows=[
            {"front": "http", "target": "gateway-invoke-chain", "cpu_vs_bare": 2.4, "rps_vs_nginx": 0.3},
            {"front": "http", "target": "gateway-passthrough", "cpu_vs_bare": 1.6, "rps_vs_nginx": 0.5},
            {"front": "grpc", "target": "gateway", "cpu_vs_bare": 1.3, "rps_vs_nginx": 0.5},
        ],
    )
    scale = ScenarioResult(
        "scale", "", rows=[{"idle_rss_mb": 50.0, "kb_per_stream": 20.0}, {"idle_rss_mb": 61.0, "kb_per_stream": 10.0}]
    )
    skipped = ScenarioResult(
        "latency", "", rows=[{"front": "http", "concurrency": 1, "added_p50_ms": 0.1}], skipped="x"
    )
    rows = {row["goal"]: row for row in evaluate([cpu, scale, skipped]).rows}
    assert len(rows) == len(GOALS)
    met = {goal: row["met"] for goal, row in rows.items()}
    assert met["HTTP invoke (timeout, retry, breaker) CPU/call / bare Python proxy"] == "yes"
    assert met["HTTP invoke (timeout, retry, breaker) rps / nginx, c=32, one core"] == "NO"  # at least 0.4
    assert met["HTTP passthrough CPU/call / bare Python proxy"] == "NO"
    assert met["gRPC Invoke CPU/call / bare grpc.aio proxy"] == "yes"  # the limit itself meets it
    assert rows["idle RSS (MB)"]["measured"] == 61.0  # the worst row
    assert met["idle RSS (MB)"] == "NO"
    assert met["RSS per open stream (KB)"] == "yes"
    assert met["HTTP added p50 latency at c=1 over direct (ms)"] == "not measured"  # skipped scenario
    assert met["typed stream CPU/event / passthrough, bursts"] == "not measured"
