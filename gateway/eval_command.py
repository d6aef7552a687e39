"""The ``agent-gateway eval`` command: an in-process gateway, a dataset, a report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from gateway.checks import build_check
from gateway.config.schema import GatewayConfig
from gateway.evals.dataset import DatasetError, load_dataset
from gateway.evals.offline import build_report, run_dataset
from gateway.evals.report import compare, junit, table
from gateway.pipeline import Gateway
from gateway.telemetry.tracing import build_tracer, build_tracer_provider
from gateway.transport import AdapterResources


async def evaluate(
    config: GatewayConfig, target: str, dataset: str, dataset_path: str, concurrency: int
) -> dict[str, Any]:
    """Run the dataset through ``target``; raises DatasetError / LookupError on bad input."""
    provider = build_tracer_provider(config.telemetry.tracing)
    async with aiohttp.ClientSession() as session:
        gateway = Gateway(config, AdapterResources(http=session), build_tracer(provider, config.telemetry.tracing))
        try:
            known = gateway.known_names()
            if target not in known:
                raise LookupError(f"unknown target {target!r}; known: {', '.join(sorted(known))}")
            configured = {name: build_check(name, c, gateway.judge) for name, c in config.checks.items()}
            cases = load_dataset(dataset, dataset_path, configured, gateway.judge)
            with tqdm(total=len(cases), desc=f"eval {target}", unit="case", file=sys.stderr, disable=None) as bar:
                results = await run_dataset(gateway.invoke, target, cases, max(1, concurrency), lambda: bar.update(1))
        finally:
            await gateway.aclose()
            provider.shutdown()
    return build_report(target, results)


def run_eval(config: GatewayConfig, args: argparse.Namespace) -> int:
    """The CLI: exit 0 when the pass rate is met and nothing regressed, 1 otherwise, 2 on bad input."""
    import asyncio

    try:
        dataset = Path(args.dataset).read_text(encoding="utf-8")
        report = asyncio.run(evaluate(config, args.target, dataset, args.dataset, args.concurrency))
    except (DatasetError, LookupError, OSError) as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 2
    print(table(report))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.junit:
        Path(args.junit).write_bytes(junit(report))
    code = 0 if report["pass_rate"] >= args.fail_under else 1
    if args.compare:
        previous = json.loads(Path(args.compare).read_text(encoding="utf-8"))
        regressions = compare(previous, report, args.latency_tolerance)
        for line in regressions:
            print(f"regression: {line}")
        if regressions:
            code = 1
    return code
