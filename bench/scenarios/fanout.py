"""Fan-out: a parallel workflow of 8 branches with known latencies; end-to-end
minus the slowest branch is what the gateway adds to the fan-out."""

from __future__ import annotations

from bench.gateway_config import FANOUT_MS
from bench.harness import Bench, ScenarioResult, check_http
from bench.stats import merge_rounds

NAME = "fanout"
TITLE = f"Fan-out: parallel workflow, {len(FANOUT_MS)} branches of {FANOUT_MS[0]}..{FANOUT_MS[-1]} ms (HTTP front)"


def run(bench: Bench) -> ScenarioResult:
    result = ScenarioResult(NAME, TITLE)
    up = bench.start_upstream()
    slowest = max(FANOUT_MS)
    with bench.gateway() as gw:
        url = gw.url("/v1/agents/fanout/invoke")
        check_http(url, bench.body)
        branches = [arg for ms in FANOUT_MS for arg in ("--branch", f"http://127.0.0.1:{up.http_port}/sleep/{ms}")]
        rounds = [
            bench.pyclient(
                "fanout", "--url", url, "--body", str(bench.body), "--reps", str(bench.settings.fanout_reps), *branches
            )
            for _ in range(bench.settings.rounds)
        ]
    m = merge_rounds(rounds)
    result.rows.append(
        {
            "branches": len(FANOUT_MS),
            "slowest_ms": slowest,
            "gateway_p50_ms": m["gateway_p50_ms"],
            "gateway_p99_ms": m["gateway_p99_ms"],
            "gateway_over_slowest_p50_ms": m["gateway_p50_ms"] - slowest,
            "client_gather_p50_ms": m["direct_p50_ms"],
            "client_gather_over_slowest_p50_ms": m["direct_p50_ms"] - slowest,
            "reps": int(m["reps"]),
        }
    )
    result.notes.append(
        "client_gather: the client calling the 8 branch URLs itself with asyncio.gather (the same upstream, no gateway)"
    )
    return result
