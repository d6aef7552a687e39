"""One relay of a stream to its caller, for every front: the HTTP and A2A SSE streams,
the gRPC streams, the follows of background runs.

It owns what they share: pulling the items, the listener's stream bounds
(:mod:`gateway.stream_limits`), keep-alives while the upstream is quiet, what a
caller's leaving does (cancel the upstream, or let it run on), the drain deadline
(a stream still running then ends with the front's error frame) and error frames.
A front supplies only its :class:`Wire` (how an item, the end and an error are
encoded) and, for a push sink, where frames go and what a keep-alive is.

A caller that leaves a stream that ``cancels``: the relay stops at once (closing
the gateway's stream cancels its upstream call) and calls ``cancel_upstream``
for an upstream the stream does not own (an A2A task's run). One that does not
cancel is let run: nothing happens until a write fails, which ends the relay.
A stream bound that ends a relay also calls ``cancel_upstream``: the listener
refuses to relay it, so nobody is left to read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from gateway.config.schema import ListenerCommon
from gateway.model import GatewayError
from gateway.server.disconnect import CHECK_INTERVAL
from gateway.server.drain import Drain
from gateway.stream_limits import StreamLimitReached, bounded

log = logging.getLogger("agent_gateway.relay")

T = TypeVar("T")
F = TypeVar("F")
T_contra = TypeVar("T_contra", contravariant=True)
F_co = TypeVar("F_co", covariant=True)

# Cancellations of upstreams the relay does not own, kept until done (the loop holds tasks weakly).
_CANCELLING: set[asyncio.Task[None]] = set()


class Wire(Protocol[T_contra, F_co]):
    """How one front encodes a stream: an item (None: nothing to send for it), the end of
    the stream (None: no closing frame) and an error (a front whose errors are no frames,
    gRPC, raises it instead)."""

    def event(self, item: T_contra) -> F_co | None: ...

    def end(self) -> F_co | None: ...

    def error(self, error: GatewayError) -> F_co: ...


@dataclass(frozen=True, slots=True)
class Bounds:
    """A listener's limits on one relayed stream (``None``: off)."""

    agent: str = ""
    idle: float | None = None
    total: float | None = None

    @classmethod
    def of(cls, listener: ListenerCommon, agent: str) -> Bounds:
        return cls(agent, listener.stream_idle_timeout, listener.stream_max_duration)


class Relay(Generic[T, F]):
    """``frames()`` for a pull sink (a gRPC stream), ``serve(send)`` for a push sink (SSE)."""

    def __init__(
        self,
        source: AsyncIterator[T],
        wire: Wire[T, F],
        *,
        bounds: Bounds | None = None,
        cancels: bool = False,
        caller_gone: Callable[[], bool] | None = None,
        cancel_upstream: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.wire = wire
        if bounds is not None and (bounds.idle is not None or bounds.total is not None):
            source = bounded(source, bounds.agent, bounds.idle, bounds.total, error=StreamLimitReached)
        self._items = source
        self.cancels = cancels
        self._gone = caller_gone
        self._cancel_upstream = cancel_upstream
        self._first: asyncio.Future[tuple[T] | None] | None = None
        self._left = False
        self._task: asyncio.Task[object] | None = None
        self._send: Callable[[bytes], Awaitable[None]] | None = None
        self._lock: asyncio.Lock | None = None
        self._last = 0.0
        # Keep-alives: a timer while the upstream is quiet, a task only while one is written
        # (a task per open stream, sleeping, cost about 2 KB of memory per stream).
        self._keepalive: tuple[float, bytes] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._beat: asyncio.Task[None] | None = None

    async def opening(self, within: float | None) -> None:
        """Wait up to ``within`` seconds for the first item, so a stream failing at once raises
        here (the front answers a proper status) rather than in an error frame."""
        first = self._first = asyncio.ensure_future(_next(self._items))
        try:
            await asyncio.wait({first}, timeout=within)
        except BaseException:
            first.cancel()
            raise
        if first.done() and (failure := first.exception()) is not None:
            raise failure

    async def frames(self) -> AsyncGenerator[F, None]:
        """The stream's frames: one per item, then its end or its error frame."""
        wire = self.wire
        try:
            failed: GatewayError | None = None
            end: F | None = None
            try:
                if self._first is not None:
                    first, self._first = self._first, None
                    item = await first
                    frame = wire.event(item[0]) if item is not None else None
                    del first, item  # neither needs to live as long as the stream
                    if frame is not None:
                        yield frame
                async for each in self._items:
                    if (frame := wire.event(each)) is not None:
                        yield frame
                end = wire.end()
            except GatewayError as exc:
                if isinstance(exc, StreamLimitReached):
                    self._cancel()
                failed = exc
            if failed is not None:
                yield wire.error(failed)
            elif end is not None:
                yield end
        except (asyncio.CancelledError, GeneratorExit):
            if self._gone is not None and self._gone():  # a gRPC caller that hung up, a write that failed
                self.caller_left()
            raise
        finally:
            close = getattr(self._items, "aclose", None)
            if close is not None:
                await close()  # closing the gateway's stream cancels its upstream call

    async def serve(
        self: Relay[T, bytes],
        send: Callable[[bytes], Awaitable[None]],
        *,
        keepalive: tuple[float | None, bytes] | None = None,
        drain: Drain | None = None,
    ) -> None:
        """Write every frame with ``send``: ``keepalive`` (every so many seconds, this frame) while
        the upstream is quiet, the caller watched when leaving cancels, and a stream still
        running at the ``drain`` deadline ended with the wire's error frame. Frames ready
        together (a burst read at once) go out in one write; none waits for a later one."""
        self._task = asyncio.current_task()
        self._send = send
        self._last = time.monotonic()
        helpers: list[asyncio.Task[None]] = []
        if keepalive is not None and keepalive[0] is not None:
            self._lock = asyncio.Lock()
            self._keepalive = (keepalive[0], keepalive[1])
            self._arm(keepalive[0])
        if self.cancels and self._gone is not None:
            helpers.append(asyncio.create_task(self._watch(self._gone), name="agw-caller-watch"))
        try:
            try:
                scope = drain.scope() if drain is not None else contextlib.nullcontext()
                async with scope, contextlib.aclosing(self.frames()) as frames:
                    await _coalesced(frames, self._write)
            except GatewayError as exc:  # the drain deadline (the items' errors are frames already)
                await self._write(self.wire.error(exc))
        except ConnectionError:
            self.caller_left()
            raise
        finally:
            self._keepalive = None
            if self._timer is not None:
                self._timer.cancel()
            if self._beat is not None:
                helpers.append(self._beat)
            for helper in helpers:
                helper.cancel()
            for helper in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await helper

    def caller_left(self) -> None:
        """The caller is gone: when leaving cancels, stop relaying and cancel the upstream;
        otherwise let it run on."""
        if self._left:
            return
        self._left = True
        if not self.cancels:
            return
        self._cancel()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    def _cancel(self) -> None:
        """Cancel an upstream the stream does not own (once, in the background: the caller is gone)."""
        cancel, self._cancel_upstream = self._cancel_upstream, None
        if cancel is not None:
            task = asyncio.create_task(_cancelling(cancel), name="agw-cancel-upstream")
            _CANCELLING.add(task)
            task.add_done_callback(_CANCELLING.discard)

    async def _write(self, frame: bytes) -> None:
        assert self._send is not None
        if self._lock is None:
            await self._send(frame)
            return
        await self._lock.acquire()  # not `async with`: two coroutines less for every write
        try:
            await self._send(frame)
            self._last = time.monotonic()
        finally:
            self._lock.release()

    def _arm(self, wait: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(wait, self._keepalive_due)

    def _keepalive_due(self) -> None:
        self._timer = None
        if self._keepalive is None:  # the relay ended
            return
        wait = self._last + self._keepalive[0] - time.monotonic()
        if wait > 0:  # a frame went out meanwhile
            self._arm(wait)
            return
        self._beat = asyncio.create_task(self._keep_alive(self._keepalive[1]), name="agw-keepalive")

    async def _keep_alive(self, frame: bytes) -> None:
        try:
            await self._write(frame)
        except (ConnectionError, RuntimeError):  # a keep-alive that cannot be written: the caller left
            self.caller_left()
            return
        self._beat = None  # written: the next one is the timer's
        if self._keepalive is not None:
            self._arm(max(0.0, self._last + self._keepalive[0] - time.monotonic()))

    async def _watch(self, gone: Callable[[], bool]) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            if gone():
                self.caller_left()
                return


def cancels_on_disconnect(listener: ListenerCommon, workflow_cancels: bool) -> bool:
    """Whether a caller leaving a foreground stream cancels it: the listener says so, or the
    workflow called does (``Gateway.cancels_on_disconnect``)."""
    return listener.cancel_on_disconnect or workflow_cancels


async def _coalesced(frames: AsyncGenerator[bytes, None], write: Callable[[bytes], Awaitable[None]]) -> None:
    """Write every frame, those ready at once in one write: each step of ``frames`` is run by
    hand, and one that completes without waiting adds its frame to the batch; the batch goes
    out as soon as a step would wait (or it reaches ``_BATCH_BYTES``)."""
    batch: list[bytes] = []
    size = 0
    while True:
        step = frames.asend(None)
        try:
            waiting = step.send(None)
        except StopIteration as ready:
            frame: bytes = ready.value
            batch.append(frame)
            size += len(frame)
            if size >= _BATCH_BYTES:
                await write(b"".join(batch))
                batch, size = [], 0
            continue
        except StopAsyncIteration:
            break
        # The next frame is not ready: what is goes out before waiting for it.
        if batch:
            try:
                await write(b"".join(batch) if len(batch) > 1 else batch[0])
            except BaseException:
                await _Resumed(step, waiting, abandon=True)
                raise
            batch, size = [], 0
        try:
            frame = await _Resumed(step, waiting)
        except StopAsyncIteration:
            break
        batch.append(frame)
        size += len(frame)
    if batch:
        await write(b"".join(batch) if len(batch) > 1 else batch[0])


# A batch this large is written without waiting for the step that would wait.
_BATCH_BYTES = 64 * 1024


class _Resumed:
    """Await a step of an async generator started by hand and suspended on ``waiting``: what
    the loop sends or throws goes on to the step. ``abandon``: end the step as if its task were
    cancelled (the caller's write failed meanwhile) and drop its outcome, unless the task is
    cancelled meanwhile (that cancellation is raised)."""

    __slots__ = ("_abandon", "_step", "_waiting")

    def __init__(self, step: Coroutine[Any, Any, Any], waiting: Any, *, abandon: bool = False) -> None:
        self._step = step
        self._waiting = waiting
        self._abandon = abandon

    def __await__(self) -> Generator[Any, None, Any]:
        step, waiting = self._step, self._waiting
        thrown: BaseException | None = None
        cancelled: BaseException | None = None
        if self._abandon:
            if isinstance(waiting, asyncio.Future):
                waiting.cancel()
            thrown = asyncio.CancelledError()
        else:
            try:
                yield waiting
            except BaseException as exc:  # the loop's (a cancellation): the step's to handle
                thrown = exc
        while True:
            try:
                waiting = step.send(None) if thrown is None else step.throw(thrown)
            except StopIteration as done:
                if cancelled is not None:
                    raise cancelled from None
                return None if self._abandon else done.value
            except BaseException:
                if not self._abandon:
                    raise
                if cancelled is not None:
                    raise cancelled from None
                return None
            thrown = None
            try:
                yield waiting
            except BaseException as exc:
                thrown = exc
                if self._abandon:
                    cancelled = exc


async def _next(items: AsyncIterator[T]) -> tuple[T] | None:
    try:
        return (await anext(items),)
    except StopAsyncIteration:
        return None


async def _cancelling(cancel: Callable[[], Awaitable[object]]) -> None:
    try:
        await cancel()
    except GatewayError as exc:  # already ended, or gone from the store
        log.debug("cancelling the upstream of a relayed stream: %s", exc)
    except Exception:
        log.exception("cancelling the upstream of a relayed stream failed")
