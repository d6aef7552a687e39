"""``python -m bench``: run the benchmark scenarios, print the table, write JSON.

python -m bench                    # everything (a few minutes on 2 cores)
python -m bench --quick            # a ~1.5 min smoke run
python -m bench --only latency,streaming --fronts http
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType

from bench import goals
from bench.agents import raise_nofile_limit
from bench.harness import Bench, ScenarioResult, Settings, Skip, tool_versions
from bench.report import machine, now, render, to_json, write_json
from bench.scenarios import cpu, fanout, latency, policies, scale, stream_cpu, streaming, throughput, workers

SCENARIOS: dict[str, ModuleType] = {
    m.NAME: m for m in (latency, throughput, cpu, streaming, stream_cpu, fanout, policies, scale, workers)
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs, one round: a smoke test of the harness")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated, from: {', '.join(SCENARIOS)}")
    parser.add_argument("--fronts", default="http,grpc", help="http, grpc or both")
    parser.add_argument(
        "--client",
        choices=["auto", "python"],
        default="auto",
        help="auto: wrk/h2load when installed; python: the Python client process everywhere",
    )
    parser.add_argument("--concurrency", type=_ints, help="latency concurrencies, for example 1,32")
    parser.add_argument("--requests", type=int, help="cap on requests per Python-client measurement")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON results go")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    settings = Settings.quick_mode() if args.quick else Settings()
    settings.fronts = tuple(f for f in args.fronts.split(",") if f)
    settings.client = args.client
    if args.concurrency:
        settings.concurrency = args.concurrency
    if args.requests:
        settings.requests = args.requests
    return settings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile_limit()
    settings = settings_from(args)
    started = time.monotonic()
    results: list[ScenarioResult] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="agw-bench-") as tmp:
        bench = Bench(settings, Path(tmp))
        try:
            for name in args.only.split(","):
                module = SCENARIOS[name]
                print(f"-- {name} ...", file=sys.stderr, flush=True)
                t0 = time.monotonic()
                try:
                    result: ScenarioResult = module.run(bench)
                except Skip as exc:
                    result = ScenarioResult(name, module.TITLE, skipped=str(exc))
                except Exception as exc:  # one broken scenario must not hide the others' numbers
                    traceback.print_exc()
                    failed = True
                    result = ScenarioResult(name, module.TITLE, skipped=f"FAILED: {exc}")
                print(f"   {name}: {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
                results.append(result)
        finally:
            bench.close()
        results.append(goals.evaluate(results))
        meta = {
            "date": now(),
            "quick": settings.quick,
            "machine": machine(),
            "pinning": bench.pins,
            "tools": tool_versions() if settings.client == "auto" else {},
            "seconds": round(time.monotonic() - started, 1),
        }
    print(render(results, meta))
    write_json(args.out, to_json(results, meta))
    print(f"\nresults: {args.out} ({meta['seconds']}s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
