"""Fallbacks: when the call still fails (retries exhausted, breaker open, bulkhead
full), try an ordered list of other targets or answer with a static response."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator

from opentelemetry import trace

from gateway.config.schema import FallbackSpec, FallbackTarget
from gateway.model import (
    Cancelled,
    DataPart,
    Event,
    GatewayError,
    InvalidRequest,
    Invocation,
    Message,
    NotFound,
    Part,
    PermissionDenied,
    Result,
    Role,
    TextPart,
    Unauthenticated,
    evolve,
)
from gateway.policies.base import Handler, Policy, StreamHandler

log = logging.getLogger("agent_gateway.fallback")

# The caller's own mistakes: another agent would refuse them too.
_CALLER_ERRORS = (InvalidRequest, Unauthenticated, PermissionDenied, NotFound, Cancelled)


def _static_message(target: FallbackTarget) -> Message:
    assert target.static is not None
    parts: list[Part] = []
    if target.static.text is not None:
        parts.append(TextPart(target.static.text))
    if target.static.data is not None:
        parts.append(DataPart(target.static.data))
    return Message(Role.AGENT, tuple(parts), {"fallback": "static"})


class FallbackPolicy(Policy):
    def __init__(self, spec: FallbackSpec, dispatch: Handler, open_stream: StreamHandler) -> None:
        self.spec = spec
        self.dispatch = dispatch
        self.open_stream = open_stream

    def applies(self, error: GatewayError) -> bool:
        if isinstance(error, _CALLER_ERRORS):
            return False
        return self.spec.when == "any" or error.transient

    def _note(self, invocation: Invocation, target: str, error: GatewayError) -> None:
        reason = f"{error.code.value}: {error.message}"
        invocation.record.fallback = target
        trace.get_current_span().add_event("fallback", {"agw.fallback.target": target, "agw.fallback.reason": reason})
        log.warning("falling back from %s to %s: %s", invocation.agent, target, reason)

    def _target_invocation(self, invocation: Invocation, agent: str) -> Invocation:
        return evolve(invocation, agent=agent, attempt=1)

    async def invoke(self, invocation: Invocation, call_next: Handler) -> Result:
        try:
            return await call_next(invocation)
        except GatewayError as error:
            if not self.applies(error):
                raise
            original = error
        for target in self.spec.targets:
            if target.agent is None:
                self._note(invocation, "static", original)
                return Result(invocation.agent, (_static_message(target),), {"fallback": "static"})
            self._note(invocation, target.agent, original)
            try:
                result = await self.dispatch(self._target_invocation(invocation, target.agent))
            except GatewayError as error:
                if not self.applies(error):
                    raise
                continue
            return dataclasses.replace(result, metadata={**result.metadata, "fallback": target.agent})
        raise original

    async def stream(self, invocation: Invocation, call_next: StreamHandler) -> AsyncIterator[Event]:
        delivered = False
        try:
            async for event in call_next(invocation):
                delivered = True
                yield event
            return
        except GatewayError as error:
            if delivered or not self.applies(error):
                raise
            original = error
        for target in self.spec.targets:
            if target.agent is None:
                self._note(invocation, "static", original)
                yield Event("message", message=_static_message(target))
                return
            self._note(invocation, target.agent, original)
            delivered = False
            try:
                async for event in self.open_stream(self._target_invocation(invocation, target.agent)):
                    delivered = True
                    yield event
                return
            except GatewayError as error:
                if delivered or not self.applies(error):
                    raise
        raise original
