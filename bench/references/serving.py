"""What the reference proxies share: their command line and their event loop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def add_upstream_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--upstream", type=_address, required=True, help="HOST:PORT of the one upstream")
    parser.add_argument("--port", type=int, default=0, help="where to listen on 127.0.0.1 (0: any free port)")


def run_forever(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop (as the gateway does) until SIGTERM or Ctrl-C."""
    import uvloop

    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)
