"""The gateway and its Python client share one definition of the wire model, the context headers,
the protobuf mapping, the state types and the MCP names (the client's, which the gateway imports):
these tests keep it so, and keep in step what is still written twice, the reading of an inbound
request's context (the gateway's also takes a body's context and a listener's identity).

The client cannot import the gateway (an agent installs it alone), so the gateway imports it.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import agentgateway_client as client
from agentgateway_client import mcp_wire, propagation, state_values, wire
from agentgateway_client import model as client_model
from gateway import model
from gateway import propagation as gateway_context
from gateway import wire as gateway_wire
from gateway.protocols import mcp
from gateway.state import store

PROPERTY = settings(max_examples=60, deadline=None)

ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12)
tokens = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789._-"), min_size=1, max_size=8)
baggage = st.dictionaries(tokens, st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=8), max_size=3)


def test_the_gateway_speaks_the_clients_types_and_names() -> None:
    for name in ("Role", "TextPart", "DataPart", "FilePart", "Message", "Result", "Event", "StatusCode", "Context",
                 "TokenUsage", "evolve"):
        assert getattr(model, name) is getattr(client_model, name), name
    assert store.Scope is client.Scope is state_values.Scope
    assert store.StateRecord is client.StateRecord
    # The gateway's values are the client's, refusing what cannot be stored with its own error.
    assert issubclass(store.StateValue, client.StateValue)
    assert type(store.StateValue.of_bytes(b"x")) is store.StateValue
    for name in ("SESSION_ID", "THREAD_ID", "USER_ID", "REQUEST_ID", "TIMEOUT_MS", "inject_headers"):
        assert getattr(gateway_context, name) is getattr(propagation, name), name
    for name in ("ERROR_TRAILER", "part_to_pb", "message_to_pb", "context_to_pb", "stream_request", "json_text"):
        assert getattr(gateway_wire, name) is getattr(wire, name), name
    for name in ("MODERN", "META_VERSION", "META_CLIENT_CAPABILITIES", "HEADER_VERSION", "HEADER_METHOD",
                 "HEADER_NAME", "NAMED_METHODS", "TRACE_KEYS", "request_headers", "encode_header_value"):
        assert getattr(mcp, name) is getattr(mcp_wire, name), name


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
