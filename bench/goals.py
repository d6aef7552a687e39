"""Issue 19's goals, each checked against what this run measured: the value, the
goal and whether it is met, as the last table of ``python -m bench``. Every value
is a ratio or a difference taken within the run (references side by side)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.harness import ScenarioResult

NAME = "goals"
TITLE = "Goals (issue 19): measured in this run, against the goal"

Results = Mapping[str, ScenarioResult]


def _rows(results: Results, scenario: str, **match: Any) -> list[dict[str, Any]]:
    found = results.get(scenario)
    if found is None or found.skipped:
        return []
    return [row for row in found.rows if all(row.get(k) == v for k, v in match.items())]


def _value(scenario: str, key: str, **match: Any) -> Callable[[Results], float | None]:
    def measure(results: Results) -> float | None:
        values = [row[key] for row in _rows(results, scenario, **match) if row.get(key) is not None]
        return max(values) if values else None  # several rows (scale): the worst must meet the goal

    return measure


@dataclass(frozen=True)
class Goal:
    what: str
    scenario: str
    measure: Callable[[Results], float | None]
    limit: float
    at_most: bool = True
    today: str = ""  # the figure for the gateway before this work

    def check(self, results: Results) -> dict[str, Any]:
        value = self.measure(results)
        met = "not measured" if value is None else "yes" if self._meets(value) else "NO"
        return {
            "goal": self.what,
            "measured": value,
            "target": f"{'<=' if self.at_most else '>='} {self.limit:g}",
            "met": met,
            "scenario": self.scenario,
            "issue_today": self.today or "-",
        }

    def _meets(self, value: float) -> bool:
        return value <= self.limit if self.at_most else value >= self.limit


GOALS: Sequence[Goal] = (
    Goal(
        "HTTP invoke (timeout, retry, breaker) CPU/call / bare Python proxy",
        "cpu",
        _value("cpu", "cpu_vs_bare", front="http", target="gateway-invoke-chain"),
        2.5,
        today="~13x",
    ),
    Goal(
        "HTTP invoke (timeout, retry, breaker) rps / nginx, c=32, one core",
        "cpu",
        _value("cpu", "rps_vs_nginx", front="http", target="gateway-invoke-chain"),
        0.40,
        at_most=False,
        today="~0.10",
    ),
    Goal(
        "HTTP passthrough CPU/call / bare Python proxy",
        "cpu",
        _value("cpu", "cpu_vs_bare", front="http", target="gateway-passthrough"),
        1.5,
        today="~11x",
    ),
    Goal(
        "typed stream CPU/event / passthrough, bursts",
        "stream_cpu",
        _value("stream_cpu", "cpu_vs_passthrough", shape="burst", target="typed"),
        3.0,
        today="~7x",
    ),
    Goal(
        "typed stream CPU/event / passthrough, spaced",
        "stream_cpu",
        _value("stream_cpu", "cpu_vs_passthrough", shape="spaced", target="typed"),
        1.2,
        today="1.5-1.7x",
    ),
    Goal(
        "passthrough CPU/event / nginx, spaced",
        "stream_cpu",
        _value("stream_cpu", "cpu_vs_nginx", shape="spaced", target="passthrough"),
        1.5,
        today="~2.1x",
    ),
    Goal(
        "typed stream first-chunk time / direct (HTTP, 10 ms apart)",
        "streaming",
        _value("streaming", "ttfb_ratio", front="http"),
        1.2,
        today="1.2",
    ),
    Goal(
        "gRPC Invoke CPU/call / bare grpc.aio proxy",
        "cpu",
        _value("cpu", "cpu_vs_bare", front="grpc", target="gateway"),
        1.3,
        today="~2.1x",
    ),
    Goal(
        "HTTP added p50 latency at c=1 over direct (ms)",
        "latency",
        _value("latency", "added_p50_ms", front="http", concurrency=1),
        0.3,
        today="~1.5 ms",
    ),
    Goal(
        "2 workers / 1 worker rps on 2 cores (--workers)",
        "workers",
        _value("workers", "rps_ratio", workers=2),
        1.8,
        at_most=False,
        today="no workers",
    ),
    Goal("idle RSS (MB)", "scale", _value("scale", "idle_rss_mb"), 60, today="97"),
    Goal("RSS per open stream (KB)", "scale", _value("scale", "kb_per_stream"), 30, today="50-68"),
)


def evaluate(results: Sequence[ScenarioResult]) -> ScenarioResult:
    """The goals table for ``results`` (scenarios not run show "not measured")."""
    by_name = {r.name: r for r in results}
    summary = ScenarioResult(NAME, TITLE, rows=[goal.check(by_name) for goal in GOALS])
    met = sum(row["met"] == "yes" for row in summary.rows)
    measured = sum(row["met"] != "not measured" for row in summary.rows)
    summary.notes.append(f"{met} of {measured} measured goals met ({len(GOALS)} goals)")
    summary.notes.append("issue_today: the issue's figure for the gateway when it was filed")
    return summary
