"""The deadline of a graceful shutdown, shared by both fronts and every call in flight.

On SIGTERM the gateway stops accepting and lets calls run for
``server.drain_timeout``. A call still running then is not cut: the scope it
runs in cancels it and raises :class:`Unavailable` (transient: retry on another
instance), which the front answers like any other error: HTTP 503, an SSE
``event: error`` frame, gRPC UNAVAILABLE. So a caller always gets a status,
and the process ends within the drain timeout plus the moment the answers take.

Scopes nest (the HTTP middleware opens one for every request, a stream handler
another around its events, so the stream can still write its error frame): at
the deadline only the innermost scope of each task fires.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from types import TracebackType

from gateway.model import Unavailable

log = logging.getLogger("agent_gateway")

SHUTTING_DOWN = "the gateway is shutting down; retry the call (another instance will take it)"

# Set where a front cannot hand the drain down explicitly (gRPC servicers, see server/grpc.py).
CURRENT_DRAIN: contextvars.ContextVar[Drain | None] = contextvars.ContextVar("agw_drain", default=None)


class Drain:
    """``async with drain.scope():`` around a call; ``begin(timeout)`` starts the countdown."""

    def __init__(self) -> None:
        self._scopes: dict[asyncio.Task[object], list[DrainScope]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.expired = False

    @property
    def in_flight(self) -> int:
        return len(self._scopes)

    def begin(self, timeout: float) -> None:
        """Calls still in a scope ``timeout`` seconds from now answer Unavailable."""
        if self._timer is None and not self.expired:
            self._timer = asyncio.get_running_loop().call_later(timeout, self.expire)

    def expire(self) -> None:
        self.expired = True
        self._timer = None
        if self._scopes:
            log.info("drain timeout reached: answering the %d calls still running UNAVAILABLE", len(self._scopes))
        for task, stack in self._scopes.items():
            if stack and not stack[-1].fired:
                stack[-1].fired = True
                task.cancel(SHUTTING_DOWN)

    def close(self) -> None:
        """The gateway has stopped: forget the countdown."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def scope(self) -> DrainScope:
        return DrainScope(self)

    def _enter(self, scope: DrainScope) -> None:
        self._scopes.setdefault(scope.task, []).append(scope)

    def _exit(self, scope: DrainScope) -> DrainScope | None:
        """Forget ``scope``; return the scope around it in the same task, if any."""
        stack = self._scopes.get(scope.task)
        if not stack:
            return None
        if scope in stack:
            stack.remove(scope)
        if not stack:
            del self._scopes[scope.task]
            return None
        return stack[-1]


class DrainScope:
    """One call's stretch of work that the drain deadline may end with Unavailable."""

    # One or two per open stream.
    __slots__ = ("_cancelling", "drain", "fired", "task")

    def __init__(self, drain: Drain) -> None:
        self.drain = drain
        self.fired = False
        self._cancelling = 0

    async def __aenter__(self) -> DrainScope:
        return self.enter()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.exit(kind)

    # The same, for a caller that is itself an async context manager (no coroutine per step).

    def enter(self) -> DrainScope:
        task = asyncio.current_task()
        assert task is not None, "a drain scope needs a task"
        self.task: asyncio.Task[object] = task
        if self.drain.expired:
            raise Unavailable(SHUTTING_DOWN)
        self._cancelling = task.cancelling()
        self.drain._enter(self)
        return self

    def exit(self, kind: type[BaseException] | None) -> None:
        outer = self.drain._exit(self)
        if not self.fired:
            return
        if kind is asyncio.CancelledError:
            # Ours alone (like asyncio.timeout): a cancellation from elsewhere keeps going.
            if self.task.uncancel() <= self._cancelling:
                raise Unavailable(SHUTTING_DOWN) from None
            return
        if outer is not None:
            # The work ended just as the deadline came: the pending cancellation lands
            # in the scope around, which answers instead.
            outer.fired = True
        else:
            self.task.uncancel()
