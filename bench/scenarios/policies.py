"""Policy cost: the same call with the full resilience chain (timeout, retry,
circuit breaker, concurrency limit) and with none, side by side in one gateway.

Skips with the loader's own message when this gateway's config does not accept
the ``policies`` YAML yet."""

from __future__ import annotations

from functools import partial

from bench.gateway_config import FULL_POLICIES, gateway_config, write_config
from bench.harness import Bench, ScenarioResult, Skip, alternate
from bench.stats import merge_rounds, ratio

NAME = "policies"
TITLE = "Policy cost: full chain vs none (HTTP front)"


def run(bench: Bench) -> ScenarioResult:
    from gateway.config import ConfigError, load_config

    result = ScenarioResult(NAME, TITLE)
    up = bench.start_upstream()
    document = gateway_config(up.http_port, up.grpc_port, policies=FULL_POLICIES)
    path = write_config(bench.workdir / "policies.yaml", document)
    try:
        load_config(path)
    except ConfigError as exc:
        first = exc.problems[0] if exc.problems else exc
        raise Skip(f"the config loader rejects the policies YAML ({first}); runs once policies land") from None
    s = bench.settings
    with bench.gateway("policies", document) as gw:
        for concurrency in s.concurrency:
            plain, full = gw.url("/v1/agents/fast/invoke"), gw.url("/v1/agents/fast-policies/invoke")
            rounds = alternate(
                s.rounds,
                [
                    ("none", partial(bench.http_load, plain, concurrency, s.latency_seconds)),
                    ("full", partial(bench.http_load, full, concurrency, s.latency_seconds)),
                ],
            )
            n, f = merge_rounds(rounds["none"]), merge_rounds(rounds["full"])
            result.rows.append(
                {
                    "concurrency": concurrency,
                    "client": bench.http_tool(),
                    "none_p50_ms": n["p50_ms"],
                    "full_p50_ms": f["p50_ms"],
                    "added_p50_ms": f["p50_ms"] - n["p50_ms"],
                    "none_p99_ms": n["p99_ms"],
                    "full_p99_ms": f["p99_ms"],
                    "none_rps": n["rps"],
                    "full_rps": f["rps"],
                    "rps_ratio": ratio(f["rps"], n["rps"]),
                    "errors": int(n["errors"] + f["errors"]),
                }
            )
    return result
