"""The model to and from the protobuf wire contract (``agentgateway.v1``).

The one mapping of messages, parts, contexts, results and events: the gateway's ``gateway.wire``
writes with these functions and reads with a :class:`Reader` of its own (its strict JSON decoder,
its error). Structured values cross the wire as JSON text in the ``*_json`` fields (a
``google.protobuf.Struct`` would turn 7 into 7.0); the legacy Struct fields are only read.
No I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway_client.model import (
    JSON,
    ClientError,
    Context,
    DataPart,
    Event,
    FilePart,
    Message,
    Part,
    Result,
    Role,
    StatusCode,
    TextPart,
)

# gRPC trailing metadata key carrying a serialized ErrorDetail.
ERROR_TRAILER = "agw-error-bin"

_ROLE_TO_PB = {
    Role.USER: pb.ROLE_USER,
    Role.AGENT: pb.ROLE_AGENT,
    Role.SYSTEM: pb.ROLE_SYSTEM,
    Role.TOOL: pb.ROLE_TOOL,
}
_ROLE_FROM_PB = {v: k for k, v in _ROLE_TO_PB.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):  # read-only mappings (MappingProxyType)
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_text(value: JSON) -> str:
    """``value`` as the compact JSON text of a ``*_json`` field (integers exact, key order kept)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_plain)


def object_text(values: Mapping[str, JSON]) -> str:
    """A JSON object's ``*_json`` text; empty (the field unset) for an empty object."""
    return json_text(values) if values else ""


def part_to_pb(part: Part) -> pb.Part:
    # Empty fields are left unset (the same bytes): setting one costs as much as a real value.
    out = pb.Part(metadata_json=object_text(part.metadata)) if part.metadata else pb.Part()
    if isinstance(part, TextPart):
        out.text = part.text
    elif isinstance(part, DataPart):
        out.data_json = json_text(part.data)
    else:
        out.file.CopyFrom(pb.FileRef(uri=part.uri, media_type=part.media_type, name=part.name))
    return out


def message_to_pb(message: Message) -> pb.Message:
    out = pb.Message(role=_ROLE_TO_PB[message.role], parts=[part_to_pb(p) for p in message.parts])
    if message.metadata:
        out.metadata_json = object_text(message.metadata)
    if message.message_id:
        out.message_id = message.message_id
    return out


def context_to_pb(context: Context) -> pb.Context:
    return pb.Context(
        session_id=context.session_id,
        thread_id=context.thread_id,
        user_id=context.user_id,
        request_id=context.request_id,
        # No empty map in the constructor: converting one costs as much as a full one.
        **({"baggage": dict(context.baggage)} if context.baggage else {}),
    )


def invoke_request(
    agent: str, messages: tuple[Message, ...], context: Context, params: Mapping[str, JSON], idempotent: bool
) -> pb.InvokeRequest:
    """The InvokeRequest of a call: the context's ids and baggage, its remaining time as the timeout."""
    request = pb.InvokeRequest(
        agent=agent, messages=[message_to_pb(m) for m in messages], context=context_to_pb(context)
    )
    options = request.options
    options.SetInParent()  # present even when empty, as it always was
    if params:
        options.params_json = object_text(params)
    if not idempotent:
        options.idempotent = False
    remaining = context.remaining()
    if remaining is not None:
        options.timeout.FromMilliseconds(int(remaining * 1000))
    return request


def stream_request(request: pb.InvokeRequest) -> pb.InvokeStreamRequest:
    """The InvokeStream request for an Invoke request: the two messages have the same fields, numbers
    and types (the gateway's tests keep them so), so one's bytes are the other's."""
    return pb.InvokeStreamRequest.FromString(request.SerializeToString())


@dataclass(frozen=True, slots=True)
class Reader:
    """Reads the model from protobuf messages. ``loads(text, field)`` decodes a ``*_json`` field's
    text (``field`` names it, for errors); ``invalid(why)`` is the error of a malformed message."""

    loads: Callable[[str, str], JSON]
    invalid: Callable[[str], Exception]

    def object(self, text: str, legacy: struct_pb2.Struct, field: str) -> dict[str, JSON]:
        """A JSON object field: its ``*_json`` text, else the legacy Struct (numbers as doubles)."""
        if text:
            value = self.loads(text, field)
            if type(value) is not dict:
                raise self.invalid(f"{field} must hold a JSON object")
            return value
        return json_format.MessageToDict(legacy) if legacy.fields else {}

    def value(self, text: str, legacy: struct_pb2.Value | None, field: str) -> JSON:
        """A JSON value field (an event's payload): its text, else the legacy Value, else None."""
        if text:
            return self.loads(text, field)
        return json_format.MessageToDict(legacy) if legacy is not None else None

    def part(self, part: pb.Part) -> Part:
        # Checked before reading: a submessage read costs a wrapper, and most parts have no metadata.
        has_metadata = part.metadata_json or part.HasField("metadata")
        metadata = self.object(part.metadata_json, part.metadata, "Part.metadata_json") if has_metadata else {}
        kind = part.WhichOneof("kind")
        if kind == "text":
            return TextPart(part.text, metadata)
        if kind == "data_json":
            return DataPart(self.loads(part.data_json, "Part.data_json"), metadata)
        if kind == "data":
            return DataPart(json_format.MessageToDict(part.data), metadata)
        if kind == "file":
            return FilePart(part.file.uri, part.file.media_type, part.file.name, metadata)
        raise self.invalid("every message part needs one of 'text', 'data' or 'file'")

    def message(self, message: pb.Message, default_role: Role = Role.USER) -> Message:
        has_metadata = message.metadata_json or message.HasField("metadata")
        return Message(
            _ROLE_FROM_PB.get(message.role, default_role),
            tuple([self.part(p) for p in message.parts]),
            self.object(message.metadata_json, message.metadata, "Message.metadata_json") if has_metadata else {},
            message.message_id,
        )

    def context(self, context: pb.Context) -> Context:
        return Context(
            session_id=context.session_id,
            thread_id=context.thread_id,
            user_id=context.user_id,
            request_id=context.request_id,
            baggage=dict(context.baggage) if len(context.baggage) else {},  # dict() of an empty map is slow
        )

    def result(self, response: pb.InvokeResponse) -> Result:
        has_metadata = response.metadata_json or response.HasField("metadata")
        return Result(
            agent=response.agent,
            messages=tuple([self.message(m, Role.AGENT) for m in response.messages]),
            metadata=(
                self.object(response.metadata_json, response.metadata, "InvokeResponse.metadata_json")
                if has_metadata
                else {}
            ),
        )

    def event(self, event: pb.Event) -> Event:
        return Event(
            type=event.type,
            message=self.message(event.message, Role.AGENT) if event.HasField("message") else None,
            data=self.value(event.data_json, event.data if event.HasField("data") else None, "Event.data_json"),
        )


def _loads(text: str, field: str) -> JSON:
    return json.loads(text)


def _invalid(message: str) -> ClientError:
    return ClientError(StatusCode.INVALID_ARGUMENT, message)


# The client's reader: what the gateway sends is its own compact JSON, so the standard decoder reads it.
READER = Reader(_loads, _invalid)
part_from_pb = READER.part
message_from_pb = READER.message
result_from_pb = READER.result
event_from_pb = READER.event


def client_error(error: grpc.aio.AioRpcError) -> ClientError:
    """The gateway's ErrorDetail from the trailers; else the bare gRPC status."""
    for key, value in error.trailing_metadata() or ():
        if key == ERROR_TRAILER and isinstance(value, bytes):
            detail = pb.ErrorDetail.FromString(value)
            return ClientError(
                StatusCode(detail.code) if detail.code in StatusCode._value2member_map_ else StatusCode.UNKNOWN,
                detail.message,
                agent=detail.agent,
                transient=detail.transient,
                request_id=detail.request_id,
                details=READER.object(detail.details_json, detail.details, "ErrorDetail.details_json") or None,
            )
    code = error.code()
    name = code.name if code is not None else "UNKNOWN"
    return ClientError(
        StatusCode(name) if name in StatusCode.__members__ else StatusCode.UNKNOWN,
        error.details() or name,
        transient=name == "UNAVAILABLE",
    )
