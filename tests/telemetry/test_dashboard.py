"""The Grafana dashboard only queries metrics the gateway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest

from gateway.policies.build import PolicyRegistry
from gateway.telemetry.metrics import GatewayMetrics

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "agent-gateway-dashboard.json"


def exported_names() -> set[str]:
    text = generate_latest(GatewayMetrics(PolicyRegistry).registry).decode()
    names = set(re.findall(r"^# TYPE (\w+) (\w+)", text, re.M))
    exported = set()
    for name, kind in names:
        exported.add(name)
        if kind == "counter":
            exported.add(f"{name}_total")
        if kind == "histogram":
            exported.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return exported


def test_every_dashboard_query_uses_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(agw_\w+)", target["expr"])
    }
    assert queried, "the dashboard queries nothing"
    missing = queried - exported_names()
    assert not missing, f"the dashboard queries metrics the gateway does not export: {sorted(missing)}"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
