"""Eval reports: a terminal table, JUnit XML for CI, and the comparison of two runs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

# A pass-rate drop or a p50 latency rise beyond these counts as a regression.
PASS_RATE_TOLERANCE = 0.0
LATENCY_TOLERANCE = 0.25


def table(report: dict[str, Any]) -> str:
    rows = [("scope", "runs", "pass rate", "p50 ms", "p90 ms", "p99 ms")]
    latency = report["latency_ms"]
    rows.append(
        (
            report["target"],
            str(report["cases"]),
            f"{report['pass_rate']:.0%}",
            f"{latency['p50']:.1f}",
            f"{latency['p90']:.1f}",
            f"{latency['p99']:.1f}",
        )
    )
    for name, step in report["steps"].items():
        lat = step["latency_ms"]
        rows.append(
            (
                f"  step {name}",
                str(step["runs"]),
                f"{step['pass_rate']:.0%}",
                f"{lat['p50']:.1f}",
                f"{lat['p90']:.1f}",
                f"{lat['p99']:.1f}",
            )
        )
    for name, check in report["checks"].items():
        rows.append((f"  check {name}", str(check["runs"]), f"{check['pass_rate']:.0%}", "", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def junit(report: dict[str, Any]) -> bytes:
    failures = report["cases"] - report["passed"]
    suite = ET.Element(
        "testsuite",
        name=f"eval {report['target']}",
        tests=str(report["cases"]),
        failures=str(failures),
        errors="0",
        time=f"{sum(r['latency_ms'] for r in report['results']) / 1000:.3f}",
    )
    for result in report["results"]:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"eval.{report['target']}",
            name=str(result["id"]),
            time=f"{result['latency_ms'] / 1000:.3f}",
        )
        if not result["passed"]:
            reasons = [result["error"]] if result["error"] else []
            reasons += [f"{c['check']}: {c['reason']}" for c in result["checks"] if not c["passed"]]
            failure = ET.SubElement(case, "failure", message=reasons[0] if reasons else "failed")
            failure.text = "\n".join(reasons)
    document: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return document


def compare(
    previous: dict[str, Any], current: dict[str, Any], latency_tolerance: float = LATENCY_TOLERANCE
) -> list[str]:
    """Regressions of ``current`` against ``previous``, one line each (empty when none).

    A p50 rise counts when it exceeds ``latency_tolerance`` (a fraction) of the old value.
    """
    found = []

    def rate(scope: str, before: float, after: float) -> None:
        if after < before - PASS_RATE_TOLERANCE:
            found.append(f"{scope}: pass rate {before:.0%} -> {after:.0%}")

    def latency(scope: str, before: float, after: float) -> None:
        if before > 0 and after > before * (1 + latency_tolerance):
            found.append(f"{scope}: p50 latency {before:.1f} ms -> {after:.1f} ms")

    rate(current["target"], previous["pass_rate"], current["pass_rate"])
    latency(current["target"], previous["latency_ms"]["p50"], current["latency_ms"]["p50"])
    for name, step in current["steps"].items():
        if (old := previous["steps"].get(name)) is not None:
            rate(f"step {name}", old["pass_rate"], step["pass_rate"])
            latency(f"step {name}", old["latency_ms"]["p50"], step["latency_ms"]["p50"])
    for name, check in current["checks"].items():
        if (old_check := previous["checks"].get(name)) is not None:
            rate(f"check {name}", old_check["pass_rate"], check["pass_rate"])
    return found
