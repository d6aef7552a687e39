"""The model to and from the protobuf wire contract (``agentgateway.v1``), as the client needs it.

The gateway's side of the same mapping is ``gateway.wire``: structured values cross the wire as
JSON text in the ``*_json`` fields (a ``google.protobuf.Struct`` would turn 7 into 7.0); the
legacy Struct fields are only read. tests/clients keeps the two sides byte for byte alike.
No I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway_client.model import (
    JSON,
    ClientError,
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
from agentgateway_client.propagation import Context

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


def _object_text(values: Mapping[str, JSON]) -> str:
    return json_text(values) if values else ""


def _object(text: str, legacy: struct_pb2.Struct) -> dict[str, JSON]:
    """A JSON object field: its ``*_json`` text, else the legacy Struct (numbers as doubles)."""
    if text:
        value: dict[str, JSON] = json.loads(text)
        return value
    return json_format.MessageToDict(legacy) if legacy.fields else {}


def part_to_pb(part: Part) -> pb.Part:
    out = pb.Part(metadata_json=_object_text(part.metadata))
    if isinstance(part, TextPart):
        out.text = part.text
    elif isinstance(part, DataPart):
        out.data_json = json_text(part.data)
    else:
        out.file.CopyFrom(pb.FileRef(uri=part.uri, media_type=part.media_type, name=part.name))
    return out


def message_to_pb(message: Message) -> pb.Message:
    return pb.Message(
        role=_ROLE_TO_PB[message.role],
        parts=[part_to_pb(p) for p in message.parts],
        metadata_json=_object_text(message.metadata),
        message_id=message.message_id,
    )


def invoke_request(
    agent: str, messages: tuple[Message, ...], context: Context, params: Mapping[str, JSON], idempotent: bool
) -> pb.InvokeRequest:
    """The InvokeRequest of a call: the context's ids and baggage, its remaining time as the timeout."""
    options = pb.InvokeOptions(params_json=_object_text(params))
    if not idempotent:
        options.idempotent = False
    remaining = context.remaining()
    if remaining is not None:
        options.timeout.FromMilliseconds(int(remaining * 1000))
    return pb.InvokeRequest(
        agent=agent,
        messages=[message_to_pb(m) for m in messages],
        context=pb.Context(
            session_id=context.session_id,
            thread_id=context.thread_id,
            user_id=context.user_id,
            request_id=context.request_id,
            baggage=dict(context.baggage),
        ),
        options=options,
    )


def stream_request(request: pb.InvokeRequest) -> pb.InvokeStreamRequest:
    """The InvokeStream request for an Invoke request: the two messages have the same fields, numbers
    and types (the gateway's tests keep them so), so one's bytes are the other's."""
    return pb.InvokeStreamRequest.FromString(request.SerializeToString())


def part_from_pb(part: pb.Part) -> Part:
    metadata = _object(part.metadata_json, part.metadata)
    kind = part.WhichOneof("kind")
    if kind == "text":
        return TextPart(part.text, metadata)
    if kind == "data_json":
        return DataPart(json.loads(part.data_json), metadata)
    if kind == "data":
        return DataPart(json_format.MessageToDict(part.data), metadata)
    if kind == "file":
        return FilePart(part.file.uri, part.file.media_type, part.file.name, metadata)
    raise ClientError(StatusCode.INVALID_ARGUMENT, "every message part needs one of 'text', 'data' or 'file'")


def message_from_pb(message: pb.Message, default_role: Role = Role.USER) -> Message:
    return Message(
        role=_ROLE_FROM_PB.get(message.role, default_role),
        parts=tuple(part_from_pb(p) for p in message.parts),
        metadata=_object(message.metadata_json, message.metadata),
        message_id=message.message_id,
    )


def result_from_pb(response: pb.InvokeResponse) -> Result:
    return Result(
        agent=response.agent,
        messages=tuple(message_from_pb(m, Role.AGENT) for m in response.messages),
        metadata=_object(response.metadata_json, response.metadata),
    )


def event_from_pb(event: pb.Event) -> Event:
    if event.data_json:
        data: JSON = json.loads(event.data_json)
    else:
        data = json_format.MessageToDict(event.data) if event.HasField("data") else None
    return Event(
        type=event.type,
        message=message_from_pb(event.message, Role.AGENT) if event.HasField("message") else None,
        data=data,
    )


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
                details=_object(detail.details_json, detail.details) or None,
            )
    code = error.code()
    name = code.name if code is not None else "UNKNOWN"
    return ClientError(
        StatusCode(name) if name in StatusCode.__members__ else StatusCode.UNKNOWN,
        error.details() or name,
        transient=name == "UNAVAILABLE",
    )
