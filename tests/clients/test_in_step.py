"""The client's own copies of the wire model, the context headers, the protobuf mapping and the
MCP names are the gateway's: same fields and values, same bytes and headers for the same input.

The client cannot import the gateway (an agent installs it alone), so these tests are what keeps
the two from drifting: change one side and they fail until the other follows.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import propagate

import agentgateway_client as client
from agentgateway_client import propagation, tools, wire
from agentgateway_client import state as client_state
from gateway import model
from gateway import propagation as gateway_context
from gateway import wire as gateway_wire
from gateway.protocols import mcp
from gateway.state import store

PROPERTY = settings(max_examples=60, deadline=None)

ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12)
tokens = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789._-"), min_size=1, max_size=8)
baggage = st.dictionaries(tokens, st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=8), max_size=3)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
metadata = st.dictionaries(st.text(max_size=5), json_values, max_size=2)
ROLES = list(model.Role)


@st.composite
def messages(draw: st.DrawFn) -> model.Message:
    part = st.one_of(
        st.builds(model.TextPart, st.text(max_size=10), metadata),
        st.builds(model.DataPart, json_values, metadata),
        st.builds(model.FilePart, st.text(max_size=10), st.text(max_size=5), st.text(max_size=5), metadata),
    )
    return model.Message(draw(st.sampled_from(ROLES)), tuple(draw(st.lists(part, max_size=3))), draw(metadata), draw(ids))


def as_client(message: model.Message) -> client.Message:
    """The same message built from the client's types."""
    parts: list[client.Part] = []
    for part in message.parts:
        if isinstance(part, model.TextPart):
            parts.append(client.TextPart(part.text, part.metadata))
        elif isinstance(part, model.DataPart):
            parts.append(client.DataPart(part.data, part.metadata))
        else:
            parts.append(client.FilePart(part.uri, part.media_type, part.name, part.metadata))
    return client.Message(client.Role(message.role.value), tuple(parts), message.metadata, message.message_id)


def plain(value: Any) -> Any:
    """A dataclass tree as dicts, lists and strings (enums by value), to compare across the two models."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {type(value).__name__: {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value.value if isinstance(value, model.Role | client.Role) else value


def field_names(kind: type) -> list[str]:
    return [f.name for f in dataclasses.fields(kind)]


def test_the_model_has_the_gateways_names_fields_and_values() -> None:
    for ours, theirs in [
        (client.TextPart, model.TextPart),
        (client.DataPart, model.DataPart),
        (client.FilePart, model.FilePart),
        (client.Message, model.Message),
        (client_state.StateValue, store.StateValue),
        (client_state.StateRecord, store.StateRecord),
    ]:
        assert field_names(ours) == field_names(theirs), ours
    # The call's usage is the gateway's own record: it never crosses the client's wire.
    assert field_names(client.Result) == [n for n in field_names(model.Result) if n != "usage"]
    assert field_names(client.Event) == [n for n in field_names(model.Event) if n != "usage"]
    assert field_names(propagation.Context) == [n for n in field_names(model.Context) if n != "idempotency_key"]
    for ours_enum, theirs_enum in [(client.Role, model.Role), (client.StatusCode, model.StatusCode), (client.Scope, store.Scope)]:
        assert [m.value for m in ours_enum] == [m.value for m in theirs_enum]


def test_the_header_and_mcp_names_are_the_gateways() -> None:
    for name in ("SESSION_ID", "THREAD_ID", "USER_ID", "REQUEST_ID", "TIMEOUT_MS"):
        assert getattr(propagation, name) == getattr(gateway_context, name)
    assert propagation.ID_BAGGAGE == gateway_context._ID_BAGGAGE
    assert wire.ERROR_TRAILER == gateway_wire.ERROR_TRAILER
    for name in ("MODERN", "META_VERSION", "META_CLIENT_CAPABILITIES", "HEADER_VERSION", "HEADER_METHOD",
                 "HEADER_NAME", "NAMED_METHODS", "TRACE_KEYS", "_SENTINEL_START", "_SENTINEL_END"):
        assert getattr(tools, name) == getattr(mcp, name), name


@PROPERTY
@given(st.sampled_from(["tools/call", "tools/list", "prompts/get", "resources/read"]), st.text(max_size=10))
def test_mcp_request_headers_are_the_gateways(method: str, name: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"name": name, "uri": name}}
    assert tools.request_headers(body) == mcp.request_headers(body, mcp.MODERN)


@PROPERTY
@given(ids, ids, ids, ids, baggage, st.none() | st.floats(0, 1e5), st.booleans())
def test_outbound_headers_are_the_gateways(
    session: str, thread: str, user: str, request: str, entries: dict[str, str], left: float | None, traced: bool
) -> None:
    now = time.monotonic()
    deadline = None if left is None else now + left
    trace = propagate.extract({"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"}) if traced else otel_context.Context()
    ours: dict[str, str] = {}
    theirs: dict[str, str] = {}
    propagation.inject_headers(propagation.Context(session, thread, user, request, entries, deadline), ours, trace, now=now)
    gateway_context.inject_headers(model.Context(session, thread, user, request, entries, deadline), theirs, trace, now=now)
    assert list(ours.items()) == list(theirs.items())


@PROPERTY
@given(ids, ids, ids, ids, baggage, st.none() | st.integers(0, 10**6))
def test_the_inbound_context_is_read_as_the_gateway_reads_it(
    session: str, thread: str, user: str, request: str, entries: dict[str, str], millis: int | None
) -> None:
    carrier: dict[str, str] = {}
    # Inbound baggage as a caller sends it, with an id entry the gateway never trusts.
    gateway_context.inject_headers(model.Context(baggage={**entries, "enduser.id": "forged"}), carrier)
    headers = {**carrier, "x-session-id": session, "x-thread-id": thread, "x-user-id": user, "x-request-id": request}
    if millis is not None:
        headers["x-timeout-ms"] = str(millis)
    ours = propagation.inbound_context(headers)
    theirs = gateway_context.context_from_headers(headers)
    same = ["session_id", "thread_id", "user_id", "baggage"] + (["request_id"] if request else [])
    assert [getattr(ours, n) for n in same] == [getattr(theirs, n) for n in same]
    assert bool(ours.request_id) and bool(theirs.request_id)
    if millis is None:
        assert ours.deadline is None and theirs.deadline is None
    else:
        assert ours.deadline is not None and theirs.deadline is not None
        assert abs(ours.deadline - theirs.deadline) < 1.0


@PROPERTY
@given(st.text(max_size=8), st.lists(messages(), min_size=1, max_size=2), ids, ids, baggage, metadata, st.booleans())
def test_an_invoke_request_is_the_gateways_byte_for_byte(
    agent: str, sent: list[model.Message], session: str, request: str, entries: dict[str, str],
    params: dict[str, Any], idempotent: bool,
) -> None:
    context = model.Context(session_id=session, request_id=request, baggage=entries)
    invocation = model.Invocation(agent, tuple(sent), context, model.Options(params, idempotent))
    theirs = gateway_wire.invocation_to_pb(invocation)
    ours = wire.invoke_request(
        agent, tuple(as_client(m) for m in sent), propagation.Context(session_id=session, request_id=request, baggage=entries),
        params, idempotent,
    )
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)


@PROPERTY
@given(st.text(max_size=8), st.lists(messages(), max_size=2), metadata, st.text(max_size=8), json_values)
def test_results_and_events_read_as_the_gateway_reads_them(
    agent: str, answer: list[model.Message], meta: dict[str, Any], kind: str, data: Any
) -> None:
    result = model.Result(agent, tuple(answer), meta)
    response = gateway_wire.result_to_pb(result, model.Context())
    assert plain(wire.result_from_pb(response)) == {
        "Result": {k: v for k, v in plain(gateway_wire.result_from_pb(response))["Result"].items() if k != "usage"}
    }
    message = answer[0] if answer else None
    event = gateway_wire.event_to_pb(model.Event(kind, message, data), 3)
    theirs = plain(gateway_wire.event_from_pb(event))["Event"]
    assert plain(wire.event_from_pb(event)) == {"Event": {k: v for k, v in theirs.items() if k != "usage"}}
