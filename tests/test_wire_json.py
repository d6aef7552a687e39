"""The direct JSON mapping (gateway/wire_json.py) and protobuf's json_format agree.

Property-based: random model objects are printed both ways and must give the
same JSON (numbers typed: both keep integers exact, through the ``*_json`` text);
random valid JSON is read both ways and must give the same model; random
hostile JSON is either handed back to protobuf (``None``) or read exactly as
protobuf reads it, never accepted where protobuf refuses it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import duration_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgateway.v1 import gateway_pb2 as pb
from gateway import wire, wire_json
from gateway.model import (
    Context,
    DataPart,
    Event,
    FilePart,
    InvalidRequest,
    Invocation,
    Message,
    Options,
    Part,
    Result,
    Role,
    TextPart,
)
from tests.helpers.wire import typed

PROPERTY = settings(max_examples=200, deadline=None)

# -- strategies ---------------------------------------------------------------

# Text protobuf stores (no surrogates); `any_text` adds lone surrogates, which protobuf refuses.
clean_text = st.text(max_size=12)
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
clean_numbers = st.integers() | st.integers(2**53, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
clean_json = st.recursive(
    st.none() | st.booleans() | clean_numbers | clean_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(clean_text, inner, max_size=3),
    max_leaves=12,
)
# Everything JSON decoding can produce, and more: huge ints, NaN, surrogates, tuples.
hostile_scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
hostile_json = st.recursive(
    hostile_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=10,
)
clean_struct = st.dictionaries(clean_text, clean_json, max_size=3)


def parts(text: st.SearchStrategy[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Part]:
    metadata = st.dictionaries(text, values, max_size=2)
    return st.one_of(
        st.builds(TextPart, text, metadata),
        st.builds(DataPart, values, metadata),
        st.builds(FilePart, text, text, text, metadata),
    )


def messages(text: st.SearchStrategy[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Message]:
    return st.builds(
        Message,
        st.sampled_from(list(Role)),
        st.lists(parts(text, values), max_size=3).map(tuple),
        st.dictionaries(text, values, max_size=2),
        text,
    )


def contexts(text: st.SearchStrategy[str]) -> st.SearchStrategy[Context]:
    return st.builds(Context, text, text, text, text, st.dictionaries(text, text, max_size=2))


def results(text: st.SearchStrategy[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Result]:
    return st.builds(
        Result, text, st.lists(messages(text, values), max_size=2).map(tuple), st.dictionaries(text, values, max_size=2)
    )


def events(text: st.SearchStrategy[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Event]:
    return st.builds(Event, text, st.none() | messages(text, values), values)


def invocations(text: st.SearchStrategy[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Invocation]:
    options = st.builds(Options, st.dictionaries(text, values, max_size=2), st.booleans())
    return st.builds(
        Invocation,
        text,
        st.lists(messages(text, values), max_size=2).map(tuple),
        contexts(text),  # no deadline: the remaining time would differ between the two calls
        options,
    )


# -- comparing ----------------------------------------------------------------


def outcome(produce: Callable[[], Any]) -> Any:
    """The typed result, or the error's type and message."""
    try:
        return typed(produce())
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


def slow_request(data: Any) -> wire.InvokeRequestData:
    """What the protobuf path makes of an InvokeRequest body (raises its errors)."""
    request = pb.InvokeRequest()
    wire.parse_json(data, request)
    timeout = request.options.timeout.ToTimedelta().total_seconds() if request.options.HasField("timeout") else None
    return wire.InvokeRequestData(
        agent=request.agent,
        messages=tuple(wire.message_from_pb(m) for m in request.messages),
        context=wire.context_from_pb(request.context),
        params=wire._object(request.options.params_json, request.options.params, "params_json"),
        idempotent=request.options.idempotent if request.options.HasField("idempotent") else True,
        timeout=timeout,
    )


def slow_messages(data: Any) -> tuple[Message, ...]:
    response = pb.InvokeResponse()
    wire.parse_json({"messages": data}, response)
    return wire.result_from_pb(response).messages


def slow_event(data: Any) -> Event:
    event = pb.Event()
    wire.parse_json(data, event)
    return wire.event_from_pb(event)


# -- model -> JSON ------------------------------------------------------------


@PROPERTY
@given(results(clean_text, clean_json), contexts(clean_text))
def test_result_json_matches_protobuf(result: Result, context: Context) -> None:
    expected = wire.to_json(wire.result_to_pb(result, context))
    assert typed(wire_json._result_out(result, context)) == typed(expected)  # the fast path, not the fallback


@PROPERTY
@given(invocations(clean_text, clean_json))
def test_invocation_json_matches_protobuf(invocation: Invocation) -> None:
    expected = wire.to_json(wire.invocation_to_pb(invocation))
    assert typed(wire_json._invocation_out(invocation)) == typed(expected)


@PROPERTY
@given(events(clean_text, clean_json), st.integers(0, 2**64 - 1))
def test_stream_event_json_matches_protobuf(event: Event, sequence: int) -> None:
    expected = wire.to_json(pb.InvokeStreamResponse(event=wire.event_to_pb(event, sequence)))
    assert typed({"event": wire_json._event_out(event, sequence)}) == typed(expected)


# Events as streams carry them: a type and one message of text parts, mostly plain.
text_events = st.builds(
    Event,
    clean_text | any_text,
    st.builds(
        Message,
        st.sampled_from(list(Role)),
        st.lists(
            st.builds(TextPart, clean_text | any_text) | parts(any_text, hostile_json), min_size=1, max_size=3
        ).map(tuple),
    ),
)


@PROPERTY
@given(text_events | events(any_text, hostile_json), st.integers(0, 2**64 - 1))
def test_stream_event_text_is_the_json_of_stream_event_json(event: Event, sequence: int) -> None:
    """The text the HTTP stream writes is exactly json.dumps of the mapping (or fails as it does)."""
    assert outcome(lambda: wire_json.stream_event_text(event, sequence)) == outcome(
        lambda: json.dumps(wire_json.stream_event_json(event, sequence))
    )


@PROPERTY
@given(results(any_text, hostile_json), contexts(any_text), events(any_text, hostile_json))
def test_printing_anything_matches_protobuf_or_its_error(result: Result, context: Context, event: Event) -> None:
    assert outcome(lambda: wire_json.result_json(result, context)) == outcome(
        lambda: wire.to_json(wire.result_to_pb(result, context))
    )
    assert outcome(lambda: wire_json.stream_event_json(event, 3)) == outcome(
        lambda: wire.to_json(pb.InvokeStreamResponse(event=wire.event_to_pb(event, 3)))
    )


@PROPERTY
@given(st.integers(0, 10**12))
def test_duration_json_matches_protobuf(millis: int) -> None:
    duration = duration_pb2.Duration()
    duration.FromMilliseconds(millis)
    assert wire_json.duration_json(millis) == duration.ToJsonString()


def test_invocation_json_carries_the_remaining_time() -> None:
    invocation = Invocation("a", (Message.user("hi"),), Context().with_timeout(5.0))
    timeout = wire_json.invocation_json(invocation)["options"]["timeout"]
    assert timeout.endswith("s") and 4.5 < float(timeout[:-1]) <= 5.0


# -- JSON -> model ------------------------------------------------------------


@PROPERTY
@given(invocations(clean_text, clean_json), st.sampled_from([None, "1s", "0.250s", "-2s", "3.000000001s"]))
def test_reading_valid_requests_matches_protobuf(invocation: Invocation, timeout: str | None) -> None:
    data = wire.to_json(wire.invocation_to_pb(invocation))
    if timeout is not None:
        data["options"]["timeout"] = timeout
    fast = wire_json.invoke_request(data)
    assert fast is not None  # valid camelCase JSON never needs the protobuf path
    assert typed(fast) == typed(slow_request(data))


@PROPERTY
@given(
    st.lists(messages(clean_text, clean_json), max_size=3),
    events(clean_text, clean_json),
    st.sampled_from(["keep", "drop", "ROLE_UNSPECIFIED"]),
    st.integers(0, 2**64 - 1) | st.integers(0, 2**64 - 1).map(str),
)
def test_reading_valid_replies_and_events_matches_protobuf(
    replies: list[Message], event: Event, role: str, sequence: int | str
) -> None:
    data = [wire.to_json(wire.message_to_pb(m)) for m in replies]
    for message in data:  # a missing or unspecified role is the agent's
        if role == "drop":
            del message["role"]
        elif role != "keep":
            message["role"] = role
    fast = wire_json.messages(data)
    assert fast is not None
    assert typed(fast) == typed(slow_messages(data))
    event_data = {**wire.to_json(wire.event_to_pb(event, 7)), "sequence": sequence}
    if "message" in event_data and role != "keep":
        event_data["message"]["role"] = "ROLE_UNSPECIFIED"
    fast_event = wire_json.event(event_data)
    assert fast_event is not None
    assert typed(fast_event) == typed(slow_event(event_data))


# Values that sit on the edge of what protobuf accepts for some field.
edge_values = st.sampled_from(
    [
        None,
        "",
        "1s",
        "-1s",
        "1.5",
        "ROLE_UNSPECIFIED",
        "ROLE_BAD",
        0,
        -1,
        2**53 + 1,
        2**64,
        1.0,
        math.nan,
        "\ud800",
        "007",
        " 2",
        "18446744073709551616",
        [],
        {},
        (),
        True,
    ]
)
# Keys protobuf also accepts (snake_case), or refuses.
edge_keys = st.sampled_from(["message_id", "session_id", "media_type", "text", "data", "file", "bogus", "sequence"])


@st.composite
def mutated(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> Any:
    """A valid JSON document with one spot broken: a value replaced, a key added or removed."""
    document = draw(documents)
    spots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            spots.extend((node, key) for key in list(node))
            spots.append((node, None))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            spots.extend((node, index) for index in range(len(node)))
            for value in node:
                walk(value)

    walk(document)
    container, key = draw(st.sampled_from(spots))
    if key is None:
        container[draw(edge_keys)] = draw(edge_values | hostile_json)
    elif isinstance(container, dict) and draw(st.booleans()):
        del container[key]
    else:
        container[key] = draw(edge_values | hostile_json)
    return document


def request_json(invocation: Invocation) -> Any:
    return wire.to_json(wire.invocation_to_pb(invocation))


def event_json(event: Event) -> Any:
    return wire.to_json(wire.event_to_pb(event, 5))


hostile_parts = st.lists(
    st.dictionaries(st.sampled_from(["text", "data", "file", "metadata", "mediaType", "x"]), hostile_json, max_size=3)
    | st.fixed_dictionaries(
        {"file": st.dictionaries(st.sampled_from(["uri", "mediaType", "media_type", "name"]), hostile_json)}
    )
    | hostile_json,
    max_size=3,
)
hostile_messages = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "role": st.sampled_from(["ROLE_USER", "ROLE_UNSPECIFIED", "ROLE_TOOL", "BAD", 1, 9]) | hostile_json,
            "parts": hostile_parts | hostile_json,
            "metadata": hostile_json,
            "messageId": hostile_json,
            "message_id": clean_text,
        },
    )
    | hostile_json,
    max_size=3,
)
hostile_requests = st.fixed_dictionaries(
    {},
    optional={
        "agent": clean_text | hostile_json,
        "messages": hostile_messages | hostile_json,
        "context": st.fixed_dictionaries(
            {},
            optional={
                "sessionId": clean_text | hostile_json,
                "session_id": clean_text,
                "baggage": st.dictionaries(any_text, any_text | hostile_json, max_size=2) | hostile_json,
                "other": hostile_json,
            },
        )
        | hostile_json,
        "options": st.fixed_dictionaries(
            {},
            optional={
                "timeout": st.sampled_from(["1s", "-1s", "0.5s", "1.5", "abc", "1e99s", "315576000001s"])
                | hostile_json,
                "params": hostile_json,
                "idempotent": st.booleans() | hostile_json,
            },
        )
        | hostile_json,
        "zzz": hostile_json,
    },
)
hostile_events = st.fixed_dictionaries(
    {"type": clean_text},
    optional={
        "message": hostile_messages.map(lambda m: m[0] if m else {}) | hostile_json,
        "data": hostile_json,
        "sequence": st.integers(-5, 2**65)
        | st.sampled_from(["1", "007", "-1", "1.0", " 2", "\u0661", "18446744073709551616"])
        | hostile_json,
        "extra": hostile_json,
    },
)


@settings(max_examples=300, deadline=None)
@given(hostile_requests | hostile_json | mutated(invocations(clean_text, clean_json).map(request_json)))
def test_hostile_requests_are_read_as_protobuf_reads_them(data: Any) -> None:
    fast = wire_json.invoke_request(data)
    if fast is not None:  # accepted: protobuf must accept it too and read the same
        assert typed(fast) == typed(slow_request(data))


@settings(max_examples=300, deadline=None)
@given(
    hostile_messages | hostile_json,
    hostile_events | hostile_json | mutated(events(clean_text, clean_json).map(event_json)),
)
def test_hostile_replies_and_events_are_read_as_protobuf_reads_them(replies: Any, event: Any) -> None:
    fast = wire_json.messages(replies)
    if fast is not None:
        assert typed(fast) == typed(slow_messages(replies))
    fast_event = wire_json.event(event)
    if fast_event is not None:
        assert typed(fast_event) == typed(slow_event(event))


@pytest.mark.parametrize(
    "data",
    [
        {"agent": "a", "bogus": 1},
        {"agent": "a", "messages": [{"parts": [{}]}]},
        {"agent": "a", "messages": [{"parts": [{"text": "x", "data": 1}]}]},
        {"agent": "a", "messages": [{"role": "ROLE_NOPE", "parts": [{"text": "x"}]}]},
        {"agent": "a", "messages": [{"parts": [{"text": 5}]}]},
        {"agent": "a", "options": {"timeout": "soon"}},
        {"agent": "a", "options": {"idempotent": "yes"}},
        {"agent": "a", "context": {"baggage": {"k": 1}}},
        {"agent": "a", "messages": [{"parts": [{"data": math.nan}]}]},
        {"agent": "a", "messages": [{"parts": [{"text": "\ud800"}]}]},
    ],
)
def test_what_protobuf_refuses_is_left_to_protobuf(data: dict[str, Any]) -> None:
    assert wire_json.invoke_request(data) is None
    with pytest.raises((InvalidRequest, ValueError)):
        slow_request(data)


@pytest.mark.parametrize("sequence", [-1, 2**64, 1.5, True, "-1", " 2", "18446744073709551616"])
def test_events_with_a_sequence_protobuf_refuses_are_left_to_it(sequence: Any) -> None:
    data = {"type": "delta", "sequence": sequence}
    assert wire_json.event(data) is None
    with pytest.raises(InvalidRequest):
        slow_event(data)


def test_snake_case_and_nulls_are_left_to_protobuf_which_accepts_them() -> None:
    data = {"agent": "a", "messages": [{"parts": [{"text": "x"}], "message_id": "m"}], "context": None}
    assert wire_json.invoke_request(data) is None
    assert slow_request(data).messages[0].message_id == "m"


EXACT = {"order": 7, "big": 12345678901234567890, "neg": -3, "f": 1.5, "two": 2.0, "nested": {"n": [1, 2.0, 3]}}


def test_numbers_stay_exact_in_both_mappings() -> None:
    """Integers stay integers of every width (7, not 7.0), floats stay floats (2.0), on the fast and the protobuf path."""
    data = {
        "agent": "a",
        "messages": [{"parts": [{"data": EXACT, "metadata": {"k": 3}}]}],
        "options": {"params": EXACT},
    }
    fast = wire_json.invoke_request(data)
    snake = wire_json.invoke_request({**data, "context": None})  # a null: the protobuf path
    assert fast is not None and snake is None
    for request in (fast, slow_request(data)):
        part = request.messages[0].parts[0]
        assert isinstance(part, DataPart)
        assert typed(part.data) == typed(EXACT) and typed(part.metadata) == typed({"k": 3})
        assert typed(request.params) == typed(EXACT)
    result = Result("a", (Message(Role.AGENT, (DataPart(EXACT),)),), {"usage": EXACT})
    for printed in (wire_json._result_out(result, Context()), wire.to_json(wire.result_to_pb(result, Context()))):
        assert typed(printed["messages"][0]["parts"][0]["data"]) == typed(EXACT)
        assert typed(printed["metadata"]) == typed({"usage": EXACT})


def test_the_grpc_wire_carries_json_text_and_still_reads_legacy_structs() -> None:
    message = wire.message_to_pb(Message(Role.AGENT, (DataPart(EXACT, {"m": 1}),), {"k": 2}))
    assert (
        message.parts[0].data_json
        == '{"order":7,"big":12345678901234567890,"neg":-3,"f":1.5,"two":2.0,"nested":{"n":[1,2.0,3]}}'
    )
    assert message.metadata_json == '{"k":2}' and not message.HasField("metadata")
    legacy = pb.Message(parts=[pb.Part()])  # a client built against the Struct-only contract
    legacy.parts[0].data.struct_value.update({"n": 7})
    legacy.metadata.update({"k": 2})
    read = wire.message_from_pb(legacy)
    assert read.parts[0] == DataPart({"n": 7.0}) and read.metadata == {"k": 2.0}  # doubles: why the text fields exist


@pytest.mark.parametrize(
    ("field", "text"), [("data_json", "{nope"), ("data_json", "NaN"), ("metadata_json", "[1]"), ("metadata_json", "1")]
)
def test_malformed_json_text_is_an_invalid_request(field: str, text: str) -> None:
    part = pb.Part(text="x") if field == "metadata_json" else pb.Part()
    setattr(part, field, text)
    with pytest.raises(InvalidRequest, match=f"Part.{field}"):
        wire.part_from_pb(part)
