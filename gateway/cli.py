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
from gateway.model import Caller, GatewayError
from gateway.routing import Router, RouteRequest
from gateway.telemetry.logging import configure_logging


def _load(path: str, overrides: dict[tuple[str, ...], object] | None = None) -> GatewayConfig | None:
    try:
        return load_config(path, overrides=overrides)
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
    try:
        addresses = await server.start()
    except BaseException:
        await server.stop()  # close what did open (sessions, stores), so nothing leaks at exit
        raise
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
    config = _load(args.config, {("server", "workers"): args.workers} if args.workers is not None else None)
    if config is None:
        return 2
    configure_logging(config.telemetry.logging, args.log_level)
    from gateway.server.connections import ListenError
    from gateway.server.loop import event_loop_factory

    if config.server.workers > 1:
        from gateway.server.fleet import serve_fleet  # a supervisor and its workers

        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            code: int = runner.run(serve_fleet(config, args.config, args.log_level))
        return code
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(config, args.config))
    except ListenError as exc:
        print(f"agent-gateway: {exc}", file=sys.stderr)
        return 1
    return 0


def evaluate(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    from gateway.eval_command import run_eval  # loads the gateway only when evaluating

    return run_eval(config, args)


def _pairs(values: Sequence[str], what: str, parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    pairs = []
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"{what} takes NAME=VALUE, got {item!r}")
        pairs.append((name, value))
    return pairs


def explain_routes(args: argparse.Namespace) -> int:
    """Print which route takes a described call and why each other route does not."""
    config = _load(args.config)
    if config is None:
        return 2
    parser: argparse.ArgumentParser = args.parser
    claims: dict[str, object] = {}
    for name, value in _pairs(args.claim, "--claim", parser):
        previous = claims.get(name)
        claims[name] = value if previous is None else [*(previous if isinstance(previous, list) else [previous]), value]
    request = RouteRequest(
        agent=args.agent,
        headers={k.lower(): v for k, v in _pairs(args.header, "--header", parser)},
        query=dict(_pairs(args.query, "--query", parser)),
        method=args.method.upper() if args.method else None,
        path=args.path,
        caller=Caller(args.identity or "", claims),
    )
    if (request.method is None) != (request.path is None):
        parser.error("a passthrough call needs both --method and --path")
    router = Router(config.routes, [*config.agents, *config.workflows])
    chosen = None
    for verdict in router.explain(request):
        if verdict.matched and chosen is None:
            chosen = verdict.route
            print(f"{verdict.route}: MATCHED")
        elif verdict.matched:
            print(f"{verdict.route}: would match, but {chosen} comes first")
        else:
            print(f"{verdict.route}: no: " + "; ".join(verdict.reasons))
    try:
        decision = router.decide(request)
    except GatewayError as exc:
        print(f"=> no route and no agent: {exc.message}")
        return 1
    via = f"route {decision.route}" if decision.route else "no route matched; the agent of that name"
    print(f"=> {decision.agent} ({via})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent-gateway", description="Cross-framework agent gateway and sidecar.")
    parser.add_argument("--version", action="version", version=f"agent-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the gateway")
    _add_config_argument(run_parser)
    run_parser.add_argument(
        "--log-level", default=None, choices=["debug", "info", "warning", "error"], help="overrides telemetry.logging"
    )
    run_parser.add_argument(
        "--workers", type=int, default=None, metavar="N", help="worker processes (overrides server.workers)"
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
    routes_parser = commands.add_parser("routes", help="inspect routing")
    routes_commands = routes_parser.add_subparsers(dest="routes_command", required=True)
    explain_parser = routes_commands.add_parser(
        "explain", help="which route takes a call (agent, headers, identity) and why the others do not"
    )
    _add_config_argument(explain_parser)
    explain_parser.add_argument("--agent", required=True, help="the agent name the call asks for")
    explain_parser.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    explain_parser.add_argument("--query", action="append", default=[], metavar="NAME=VALUE")
    explain_parser.add_argument("--method", help="a passthrough call's HTTP method (with --path)")
    explain_parser.add_argument("--path", help="a passthrough call's path below /v1/proxy/<agent>")
    explain_parser.add_argument("--identity", help="the authenticated identity's name")
    explain_parser.add_argument("--claim", action="append", default=[], metavar="NAME=VALUE", help="a JWT claim")
    explain_parser.set_defaults(func=explain_routes, parser=explain_parser)
    args = parser.parse_args(argv)
    sub = explain_parser if args.command == "routes" else commands.choices[args.command]
    args.config = _config_path(sub, args)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
