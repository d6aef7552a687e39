"""``agent-gateway run|validate|eval``; every command takes its config as ``-c FILE`` or bare ``FILE``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.telemetry.logging import configure_logging


def _load(path: str) -> GatewayConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"invalid config ({len(exc.problems)} problem{'s' * (len(exc.problems) != 1)}):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def _add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``-c FILE`` and a bare ``FILE`` both name the config (people type either)."""
    parser.add_argument("-c", "--config", dest="config_option", metavar="FILE", help="the gateway YAML file")
    parser.add_argument("config_file", nargs="?", metavar="FILE", help="the gateway YAML file (same as -c)")


def _config_path(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    given = [p for p in (args.config_option, args.config_file) if p is not None]
    if len(given) != 1:
        parser.error("give the config file once, as -c FILE or as FILE")
    path: str = given[0]
    return path


def validate(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    print(f"{args.config}: OK ({len(config.agents)} agents, {len(config.routes)} routes)")
    return 0


async def serve(config: GatewayConfig, path: str) -> None:
    from gateway.server.app import GatewayServer  # the servers load only when serving

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = GatewayServer(config, config_path=path)
    addresses = await server.start()
    print(
        f"agent-gateway {__version__} ready: http={addresses.http} grpc={addresses.grpc} admin={addresses.admin}",
        flush=True,
    )
    try:
        await stop.wait()
        logging.getLogger("agent_gateway").info("shutting down: draining in-flight calls")
    finally:
        await server.stop()


def run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    configure_logging(config.telemetry.logging, args.log_level)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # uvloop is optional (not on every platform)
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(config, args.config))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    from gateway.evals.runner import run_eval  # loads the gateway only when evaluating

    return run_eval(config, args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent-gateway", description="Cross-framework agent gateway and sidecar.")
    parser.add_argument("--version", action="version", version=f"agent-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the gateway")
    _add_config_argument(run_parser)
    run_parser.add_argument(
        "--log-level", default=None, choices=["debug", "info", "warning", "error"], help="overrides telemetry.logging"
    )
    run_parser.set_defaults(func=run)
    validate_parser = commands.add_parser("validate", help="check a config file and exit")
    _add_config_argument(validate_parser)
    validate_parser.set_defaults(func=validate)
    eval_parser = commands.add_parser("eval", help="run a JSONL dataset through an agent or workflow and report")
    _add_config_argument(eval_parser)
    eval_parser.add_argument("--target", required=True, help="the agent, route or workflow to evaluate")
    eval_parser.add_argument("--dataset", required=True, help="JSONL: one case per line")
    eval_parser.add_argument("--concurrency", type=int, default=4)
    eval_parser.add_argument("--json", dest="json_out", help="write the full report as JSON here")
    eval_parser.add_argument("--junit", help="write JUnit XML here (one test case per dataset case)")
    eval_parser.add_argument("--compare", help="a previous JSON report: list regressions, exit 1 when any")
    eval_parser.add_argument(
        "--latency-tolerance",
        type=float,
        default=0.25,
        help="with --compare: a p50 rise above this fraction is a regression",
    )
    eval_parser.add_argument("--fail-under", type=float, default=1.0, help="exit 1 below this pass rate")
    eval_parser.set_defaults(func=evaluate)
    args = parser.parse_args(argv)
    args.config = _config_path(commands.choices[args.command], args)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
