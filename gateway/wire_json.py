"""The protobuf JSON mapping of the wire messages, done directly on the model.

The HTTP front and the ``http`` adapter speak the proto3 JSON mapping of
``agentgateway.v1`` (camelCase names, enum names, ``"5s"`` durations,
uint64 as a string; structured values inline and exact, integers kept:
see :func:`gateway.wire.to_json`). Going through protobuf's ``json_format`` for that is
pure Python and was a third of the gateway's CPU, so this module maps the
same JSON to and from :mod:`gateway.model` itself.

It never decides anything ``json_format`` would decide differently: input it
does not fully recognise (an unknown or snake_case key, a null, a wrong
type, an unpaired surrogate, NaN or an infinity, ...) is handed to
the protobuf path in :mod:`gateway.wire`, which then accepts it or raises its
usual error. So the accepted language, the results and the error messages are
the protobuf mapping's; ``tests/test_wire_json.py`` checks the two agree on
random messages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from google.protobuf import duration_pb2

from agentgateway.v1 import gateway_pb2 as pb
from gateway import wire
from gateway.model import (
    JSON,
    Context,
    DataPart,
    Event,
    FilePart,
    Invocation,
    Message,
    Part,
    Result,
    Role,
    TextPart,
)


class _Defer(Exception):
    """The input is not one this module vouches for: the protobuf path decides."""


_DEFER = _Defer()
# json.dumps' own string encoder (ensure_ascii), for text written directly.
_quote = json.encoder.encode_basestring_ascii

_ROLE_NAMES = {
    Role.USER: "ROLE_USER",
    Role.AGENT: "ROLE_AGENT",
    Role.SYSTEM: "ROLE_SYSTEM",
    Role.TOOL: "ROLE_TOOL",
}
# None: ROLE_UNSPECIFIED, which maps to the caller's default role.
_ROLES_BY_NAME: dict[str, Role | None] = {name: role for role, name in _ROLE_NAMES.items()}
_ROLES_BY_NAME["ROLE_UNSPECIFIED"] = None
_ROLE_NAMES_BY_VALUE = {role.value: name for role, name in _ROLE_NAMES.items()}

_MAX_UINT64 = 2**64 - 1
_NO_PARTS: list[Any] = []

_REQUEST_KEYS = frozenset({"agent", "messages", "context", "options"})
_MESSAGE_KEYS = frozenset({"role", "parts", "metadata", "messageId"})
_PART_KEYS = frozenset({"text", "data", "file", "metadata"})
_FILE_KEYS = frozenset({"uri", "mediaType", "name"})
_CONTEXT_KEYS = frozenset({"sessionId", "threadId", "userId", "requestId", "baggage"})
_OPTIONS_KEYS = frozenset({"timeout", "params", "idempotent"})
_EVENT_KEYS = frozenset({"type", "message", "data", "sequence"})


# -- structured values (the `*_json` fields: JSON kept exactly) ----------------


def _string(value: Any) -> str:
    """A str protobuf stores unchanged (UTF-8 encodable: no lone surrogates)."""
    if type(value) is not str:
        raise _DEFER
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise _DEFER from None
    return value


def _finite(value: float) -> float:
    if math.isfinite(value):
        return value
    raise _DEFER  # NaN and infinities are not JSON: protobuf refuses them


def _json_value(value: Any) -> JSON:
    """``value`` checked for what the ``*_json`` text keeps (in either direction)."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is bool or value is None:
        return value
    if kind is int:
        return value  # exact, any width: the *_json text keeps every digit
    if kind is float:
        return _finite(value)
    if kind is dict:
        return _json_struct(value)
    if kind is list or kind is tuple:
        return [_json_value(v) for v in value]
    raise _DEFER


def _json_struct(values: Mapping[str, Any]) -> dict[str, JSON]:
    return {_string(k): _json_value(v) for k, v in values.items()}


def _struct_in(value: Any) -> dict[str, JSON]:
    """A Struct field read from JSON (an object; absent or empty is ``{}``)."""
    if type(value) is not dict:
        raise _DEFER
    return _json_struct(value)


def _struct_out(values: Mapping[str, JSON]) -> dict[str, JSON]:
    """A model mapping as :func:`gateway.wire.to_json` prints its ``*_json`` field."""
    if type(values) is not dict and not isinstance(values, Mapping):
        raise _DEFER
    return _json_struct(values)


# -- JSON -> model ------------------------------------------------------------


def _check_keys(data: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if type(data) is not dict or not allowed.issuperset(data):
        raise _DEFER
    return data


def _part_in(data: Any) -> Part:
    if type(data) is not dict or not _PART_KEYS.issuperset(data):  # _check_keys, inline: every event's
        raise _DEFER
    if len(data) == 1 and type(text := data.get("text")) is str and text.isascii():
        return TextPart(text, {})  # the common part (a token's text), checked at once
    metadata = _struct_in(data["metadata"]) if "metadata" in data else {}
    if "text" in data:
        if "data" in data or "file" in data:
            raise _DEFER  # two members of the oneof: protobuf's error
        return TextPart(_string(data["text"]), metadata)
    if "data" in data:
        if "file" in data:
            raise _DEFER
        return DataPart(_json_value(data["data"]), metadata)
    if "file" in data:
        ref = _check_keys(data["file"], _FILE_KEYS)
        return FilePart(
            _string(ref.get("uri", "")), _string(ref.get("mediaType", "")), _string(ref.get("name", "")), metadata
        )
    raise _DEFER  # no content: the protobuf path raises the model's error


def _message_in(data: Any, default_role: Role) -> Message:
    if type(data) is not dict or not _MESSAGE_KEYS.issuperset(data):
        raise _DEFER
    role: Role | None = default_role
    if "role" in data:
        name = data["role"]
        if type(name) is not str or name not in _ROLES_BY_NAME:
            raise _DEFER
        role = _ROLES_BY_NAME[name]
    parts = data.get("parts", _NO_PARTS)
    if type(parts) is not list:
        raise _DEFER
    return Message(
        role or default_role,
        tuple(map(_part_in, parts)),
        _struct_in(data["metadata"]) if "metadata" in data else {},
        _string(data["messageId"]) if "messageId" in data else "",
    )


def _messages_in(data: Any, default_role: Role) -> tuple[Message, ...]:
    if type(data) is not list:
        raise _DEFER
    return tuple(_message_in(m, default_role) for m in data)


def _context_in(data: Any) -> Context:
    data = _check_keys(data, _CONTEXT_KEYS)
    baggage: dict[str, str] = {}
    if "baggage" in data:
        raw = data["baggage"]
        if type(raw) is not dict:
            raise _DEFER
        baggage = {_string(k): _string(v) for k, v in raw.items()}
    return Context(
        session_id=_string(data.get("sessionId", "")),
        thread_id=_string(data.get("threadId", "")),
        user_id=_string(data.get("userId", "")),
        request_id=_string(data.get("requestId", "")),
        baggage=baggage,
    )


def _duration_seconds(value: Any) -> float:
    if type(value) is not str:
        raise _DEFER
    duration = duration_pb2.Duration()
    try:
        duration.FromJsonString(value)
    except ValueError:
        raise _DEFER from None
    return duration.ToTimedelta().total_seconds()


def _request_in(data: Any) -> wire.InvokeRequestData:
    data = _check_keys(data, _REQUEST_KEYS)
    options = _check_keys(data.get("options", {}), _OPTIONS_KEYS)
    idempotent = options.get("idempotent", True)
    if type(idempotent) is not bool:
        raise _DEFER
    return wire.InvokeRequestData(
        agent=_string(data.get("agent", "")),
        messages=_messages_in(data.get("messages", []), Role.USER),
        context=_context_in(data.get("context", {})),
        params=_struct_in(options["params"]) if "params" in options else {},
        idempotent=idempotent,
        timeout=_duration_seconds(options["timeout"]) if "timeout" in options else None,
    )


def invoke_request(data: Any) -> wire.InvokeRequestData | None:
    """The decoded JSON body of an ``InvokeRequest``, or None: let :func:`wire.parse_json` decide."""
    try:
        return _request_in(data)
    except _Defer:
        return None


def messages(data: Any, default_role: Role = Role.AGENT) -> tuple[Message, ...] | None:
    """The messages of a decoded ``InvokeResponse.messages`` list, or None: let the protobuf path decide."""
    try:
        return _messages_in(data, default_role)
    except _Defer:
        return None


def _sequence_ok(value: Any) -> bool:
    if type(value) is int:
        return 0 <= value <= _MAX_UINT64
    return type(value) is str and value.isascii() and value.isdigit() and int(value) <= _MAX_UINT64


def _event_in(data: Any) -> Event:
    if type(data) is not dict or not _EVENT_KEYS.issuperset(data):
        raise _DEFER
    if "sequence" in data and not _sequence_ok(data["sequence"]):
        raise _DEFER  # never used, but protobuf validates it
    kind = data.get("type", "")
    return Event(
        kind if type(kind) is str and kind.isascii() else _string(kind),
        _message_in(data["message"], Role.AGENT) if "message" in data else None,
        _json_value(data["data"]) if "data" in data else None,
    )


def event(data: Any) -> Event | None:
    """A decoded ``Event`` (its sequence checked, then dropped), or None: let the protobuf path decide."""
    try:
        return _event_in(data)
    except _Defer:
        return None


# -- model -> JSON ------------------------------------------------------------


def _part_out(part: Part) -> dict[str, JSON]:
    out: dict[str, JSON]
    if isinstance(part, TextPart):
        out = {"text": _string(part.text)}
    elif isinstance(part, DataPart):
        out = {"data": _json_value(part.data)}
    elif isinstance(part, FilePart):
        ref: dict[str, JSON] = {}
        if part.uri:
            ref["uri"] = _string(part.uri)
        if part.media_type:
            ref["mediaType"] = _string(part.media_type)
        if part.name:
            ref["name"] = _string(part.name)
        out = {"file": ref}
    else:
        raise _DEFER
    if part.metadata:
        out["metadata"] = _struct_out(part.metadata)
    return out


def _role_out(role: Role) -> str:
    # By the member's value: hashing an enum member is a Python call (Enum.__hash__).
    if type(role) is not Role:
        raise _DEFER
    return _ROLE_NAMES_BY_VALUE[role._value_]


def _message_out(message: Message) -> dict[str, JSON]:
    out: dict[str, JSON] = {"role": _role_out(message.role)}
    if message.parts:
        out["parts"] = [_part_out(p) for p in message.parts]
    if message.metadata:
        out["metadata"] = _struct_out(message.metadata)
    if message.message_id:
        out["messageId"] = _string(message.message_id)
    return out


def _context_out(context: Context) -> dict[str, JSON]:
    out: dict[str, JSON] = {}
    if context.session_id:
        out["sessionId"] = _string(context.session_id)
    if context.thread_id:
        out["threadId"] = _string(context.thread_id)
    if context.user_id:
        out["userId"] = _string(context.user_id)
    if context.request_id:
        out["requestId"] = _string(context.request_id)
    if context.baggage:
        out["baggage"] = {_string(k): _string(v) for k, v in context.baggage.items()}
    return out


def _result_out(result: Result, context: Context) -> dict[str, JSON]:
    out: dict[str, JSON] = {}
    if result.agent:
        out["agent"] = _string(result.agent)
    if result.messages:
        out["messages"] = [_message_out(m) for m in result.messages]
    out["context"] = _context_out(context)
    if result.metadata:
        out["metadata"] = _struct_out(result.metadata)
    return out


def duration_json(millis: int) -> str:
    """``Duration.FromMilliseconds(millis)`` in its JSON form (``millis`` >= 0)."""
    seconds, rest = divmod(millis, 1000)
    return f"{seconds}s" if rest == 0 else f"{seconds}.{rest:03d}s"


def _invocation_out(invocation: Invocation) -> dict[str, JSON]:
    options: dict[str, JSON] = {}
    remaining = invocation.context.remaining()
    if remaining is not None:
        options["timeout"] = duration_json(int(remaining * 1000))
    if invocation.options.params:
        options["params"] = _struct_out(invocation.options.params)
    if not invocation.options.idempotent:
        options["idempotent"] = False
    out: dict[str, JSON] = {}
    if invocation.agent:
        out["agent"] = _string(invocation.agent)
    if invocation.messages:
        out["messages"] = [_message_out(m) for m in invocation.messages]
    out["context"] = _context_out(invocation.context)
    out["options"] = options
    return out


def _event_out(event: Event, sequence: int) -> dict[str, JSON]:
    out: dict[str, JSON] = {}
    if event.type:
        out["type"] = _string(event.type)
    if event.message is not None:
        out["message"] = _message_out(event.message)
    if event.data is not None:
        out["data"] = _json_value(event.data)
    if sequence:
        out["sequence"] = str(sequence)
    return out


def result_json(result: Result, context: Context) -> dict[str, Any]:
    """``InvokeResponse`` JSON: ``wire.to_json(wire.result_to_pb(result, context))``."""
    try:
        return _result_out(result, context)
    except _Defer:
        return wire.to_json(wire.result_to_pb(result, context))


def invocation_json(invocation: Invocation) -> dict[str, Any]:
    """``InvokeRequest`` JSON: ``wire.to_json(wire.invocation_to_pb(invocation))``."""
    try:
        return _invocation_out(invocation)
    except _Defer:
        return wire.to_json(wire.invocation_to_pb(invocation))


def stream_event_json(event: Event, sequence: int) -> dict[str, Any]:
    """``InvokeStreamResponse`` JSON with an event."""
    try:
        return {"event": _event_out(event, sequence)}
    except _Defer:
        return wire.to_json(pb.InvokeStreamResponse(event=wire.event_to_pb(event, sequence)))


def stream_event_text(event: Event, sequence: int) -> str:
    """``json.dumps(stream_event_json(event, sequence))``, the common event (a type, a message
    of plain text parts, a sequence) written straight to text: a stream's hot path."""
    message = event.message
    if event.data is None and message is not None and sequence > 0 and event.type and message.parts:
        role = message.role
        if not message.metadata and not message.message_id and type(role) is Role:
            try:
                parts = message.parts
                texts = _text_part_text(parts[0]) if len(parts) == 1 else ", ".join(map(_text_part_text, parts))
                return (
                    f'{{"event": {{"type": {_quote(_string(event.type))}, "message": {{"role": '
                    f'"{_ROLE_NAMES_BY_VALUE[role._value_]}", "parts": [{texts}]}}, "sequence": "{sequence}"}}}}'
                )
            except _Defer:
                pass
    return json.dumps(stream_event_json(event, sequence))


def _text_part_text(part: Part) -> str:
    if type(part) is not TextPart or part.metadata:
        raise _DEFER
    text = part.text
    return f'{{"text": {_quote(text if type(text) is str and text.isascii() else _string(text))}}}'


def stream_result_json(result: Result, context: Context) -> dict[str, Any]:
    """``InvokeStreamResponse`` JSON with the final result."""
    return {"result": result_json(result, context)}
