"""Cores: requests per second of ``agent-gateway run --workers 2`` over one worker, on
the HTTP invoke path (wrk -c32), the two gateways measured round by round.

Pinning: the one-worker gateway runs on the proxy core, as in every other scenario;
the two-worker gateway (supervisor and workers) may use every CPU. The upstream and
wrk stay on the client core for both, so on a 2-core machine the second worker shares
its core with them: the ratio's ceiling is below 2 by what they spend, and
``gateway_cores`` (the gateway's CPU time over the run's wall time) shows how much CPU
each gateway got. ``rps_per_core`` divides the two: equal figures mean the workers
scale with the cores they get. ``split`` is how the calls spread over the workers
(the admin listener's /workers).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from functools import partial
from typing import Any

from bench.gateway_config import gateway_config
from bench.harness import Bench, RunningGateway, ScenarioResult, alternate, metered
from bench.procs import cpu_count
from bench.stats import median, ratio

NAME = "workers"
TITLE = "Workers: rps of 2 worker processes / 1 on the HTTP invoke path, wrk c=32"
CONCURRENCY = 32
WORKERS = 2


def _calls_per_worker(gw: RunningGateway) -> list[int]:
    assert gw.child.ready is not None
    admin = gw.child.ready.group(3)
    with urllib.request.urlopen(f"http://{admin}/workers", timeout=10) as response:
        workers = json.loads(response.read())["workers"]
    return [int(w["requests"] or 0) for w in workers]


def run(bench: Bench) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    if cpu_count() < WORKERS:
        result.skipped = f"needs {WORKERS} CPUs, this machine has {cpu_count()}"
        return result
    up = bench.start_upstream()
    s = bench.settings
    document = gateway_config(up.http_port, up.grpc_port)
    # Several workers share their state through a file (an in-memory state is refused);
    # the invoke path never touches it. The same document for both gateways.
    document["state"] = {"sqlite": {"path": str(bench.workdir / "workers-state.db")}}
    every_cpu = sorted({*bench.pins["proxy"], *bench.pins["client"]})
    with (
        bench.gateway("workers-1", document) as one,
        bench.gateway("workers-2", document, workers=WORKERS, cpus=every_cpu) as two,
    ):
        tool = bench.http_tool()

        def load(gw: RunningGateway) -> Callable[[], dict[str, Any]]:
            http = partial(bench.http_load, gw.url("/v1/agents/fast/invoke"), CONCURRENCY, s.throughput_seconds)
            return metered(http, gw.child, up.child)

        rounds = alternate(s.cpu_rounds, [("1", load(one)), ("2", load(two))])
        split = _calls_per_worker(two)
        rps = {name: median([r["rps"] for r in runs]) for name, runs in rounds.items()}
        for name, runs, gw, cpus in (("1", rounds["1"], one, bench.pins["proxy"]), ("2", rounds["2"], two, every_cpu)):
            cpu_us = median([r["cpu_us"] for r in runs if r["cpu_us"] is not None])
            cores = cpu_us * rps[name] / 1e6
            result.rows.append(
                {
                    "workers": int(name),
                    "gateway_cpus": ",".join(map(str, cpus)),
                    "client": tool,
                    "rps": rps[name],
                    "rps_range": f"{min(r['rps'] for r in runs):.0f}-{max(r['rps'] for r in runs):.0f}",
                    "rps_ratio": ratio(rps[name], rps["1"]),
                    "cpu_us": cpu_us,
                    "upstream_us": median([r["upstream_cpu_us"] for r in runs if r["upstream_cpu_us"] is not None]),
                    "gateway_cores": cores,
                    "rps_per_core": ratio(rps[name], cores),
                    "p50_ms": median([r["p50_ms"] for r in runs]),
                    "errors": sum(int(r["errors"]) for r in runs),
                    "split": "/".join(map(str, split)) if gw is two else "-",
                }
            )
    result.notes.append(
        f"{s.cpu_rounds} rounds alternating; rps: median over rounds; upstream and {tool} on CPU "
        f"{','.join(map(str, bench.pins['client']))} for both rows (they share the second worker's core)"
    )
    result.notes.append("gateway_cores: the gateway's CPU seconds (supervisor and workers) per second of the run")
    return result
