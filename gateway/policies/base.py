"""The policy contract: each policy wraps the next handler, like middleware.

A chain is built once per upstream at config load (first listed = outermost),
never per request. Policies know nothing about protocols: they see the
model's :class:`~gateway.model.Invocation` and act on its error classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from gateway.model import Event, Invocation, Result

Handler = Callable[[Invocation], Awaitable[Result]]
StreamHandler = Callable[[Invocation], AsyncIterator[Event]]


class Policy:
    """Base policy: passes calls through. Override ``invoke`` and/or ``stream``."""

    async def invoke(self, invocation: Invocation, call_next: Handler) -> Result:
        return await call_next(invocation)

    def stream(self, invocation: Invocation, call_next: StreamHandler) -> AsyncIterator[Event]:
        return call_next(invocation)


def compose(policies: Sequence[Policy], invoke: Handler, stream: StreamHandler) -> tuple[Handler, StreamHandler]:
    """Wrap the terminal handlers in ``policies`` (the first listed runs first)."""
    for policy in reversed(policies):
        invoke = _bind_invoke(policy, invoke)
        stream = _bind_stream(policy, stream)
    return invoke, stream


def _bind_invoke(policy: Policy, call_next: Handler) -> Handler:
    # Hands back the policy's own coroutine: no frame of its own for every await of the call to pass.
    def handler(invocation: Invocation) -> Awaitable[Result]:
        return policy.invoke(invocation, call_next)

    return handler


def _bind_stream(policy: Policy, call_next: StreamHandler) -> StreamHandler:
    def handler(invocation: Invocation) -> AsyncIterator[Event]:
        return policy.stream(invocation, call_next)

    return handler


async def aclose(events: AsyncIterator[Event]) -> None:
    """Close an event stream we stop reading early, so its upstream connection is released now."""
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
