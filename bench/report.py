"""The results: a plain-text table per scenario and a JSON document."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import ScenarioResult


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")), ""
        )
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def render(results: Sequence[ScenarioResult], meta: dict[str, Any]) -> str:
    out = [
        f"agent-gateway bench, {meta['date']}, {meta['machine']['cpus']} CPUs ({meta['machine']['cpu_model']})",
        "pinning: " + ", ".join(f"{role} on CPU {cpus}" for role, cpus in meta["pinning"].items()),
        "tools: " + (", ".join(f"{k}: {v}" for k, v in meta["tools"].items()) or "none (Python client only)"),
    ]
    for result in results:
        out += ["", f"== {result.title}"]
        if result.skipped:
            out.append(f"SKIPPED: {result.skipped}")
        elif result.rows:
            out.append(table(result.rows))
        out += [f"note: {n}" for n in result.notes]
    return "\n".join(out)


def to_json(results: Sequence[ScenarioResult], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": meta,
        "scenarios": {
            r.name: {"title": r.title, "rows": r.rows, "notes": r.notes, "skipped": r.skipped} for r in results
        },
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
