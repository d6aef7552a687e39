"""The mapping between the protobuf wire contract and :mod:`gateway.model`.

Both fronts, the gRPC upstream adapter and the Python client use it, so gRPC
and HTTP (the protobuf JSON mapping of the same messages) speak one model.
No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message as ProtoMessage

from agentgateway.v1 import gateway_pb2 as pb
from gateway.model import (
    JSON,
    AgentSpec,
    Context,
    DataPart,
    Event,
    FilePart,
    GatewayError,
    InvalidRequest,
    Invocation,
    Message,
    Options,
    Part,
    Result,
    Role,
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


def _struct(values: Mapping[str, JSON]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    if values:
        out.update(dict(values))
    return out


def _from_struct(value: struct_pb2.Struct) -> dict[str, JSON]:
    return json_format.MessageToDict(value) if value.fields else {}


def _value(data: JSON) -> struct_pb2.Value:
    out = struct_pb2.Value()
    json_format.ParseDict(data, out)
    return out


def _from_value(value: struct_pb2.Value) -> JSON:
    return json_format.MessageToDict(value)


# -- messages -----------------------------------------------------------------


def part_to_pb(part: Part) -> pb.Part:
    out = pb.Part(metadata=_struct(part.metadata) if part.metadata else None)
    if isinstance(part, TextPart):
        out.text = part.text
    elif isinstance(part, DataPart):
        out.data.CopyFrom(_value(part.data))
    else:
        out.file.CopyFrom(pb.FileRef(uri=part.uri, media_type=part.media_type, name=part.name))
    return out


def part_from_pb(part: pb.Part) -> Part:
    metadata = _from_struct(part.metadata)
    kind = part.WhichOneof("kind")
    if kind == "text":
        return TextPart(part.text, metadata)
    if kind == "data":
        return DataPart(_from_value(part.data), metadata)
    if kind == "file":
        return FilePart(part.file.uri, part.file.media_type, part.file.name, metadata)
    raise InvalidRequest("every message part needs one of 'text', 'data' or 'file'")


def message_to_pb(message: Message) -> pb.Message:
    return pb.Message(
        role=_ROLE_TO_PB[message.role],
        parts=[part_to_pb(p) for p in message.parts],
        metadata=_struct(message.metadata) if message.metadata else None,
        message_id=message.message_id,
    )


def message_from_pb(message: pb.Message, default_role: Role = Role.USER) -> Message:
    return Message(
        role=_ROLE_FROM_PB.get(message.role, default_role),
        parts=tuple(part_from_pb(p) for p in message.parts),
        metadata=_from_struct(message.metadata),
        message_id=message.message_id,
    )


def context_to_pb(context: Context) -> pb.Context:
    return pb.Context(
        session_id=context.session_id,
        thread_id=context.thread_id,
        user_id=context.user_id,
        request_id=context.request_id,
        baggage=dict(context.baggage),
    )


def context_from_pb(context: pb.Context) -> Context:
    return Context(
        session_id=context.session_id,
        thread_id=context.thread_id,
        user_id=context.user_id,
        request_id=context.request_id,
        baggage=dict(context.baggage),
    )


# -- requests and responses ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvokeRequestData:
    """An ``InvokeRequest`` already mapped to the model, not yet validated
    (what :mod:`gateway.wire_json` reads from an HTTP body without protobuf)."""

    agent: str
    messages: tuple[Message, ...]
    context: Context
    params: Mapping[str, JSON]
    idempotent: bool
    # options.timeout in seconds, None when absent.
    timeout: float | None


def _checked(agent: str, has_messages: bool, timeout: float | None) -> None:
    if not agent:
        raise InvalidRequest("the 'agent' field is required: name the agent to call")
    if not has_messages:
        raise InvalidRequest("at least one message is required in 'messages'")
    if timeout is not None and timeout <= 0:
        raise InvalidRequest("options.timeout must be positive")


def invocation_from_pb(
    request: pb.InvokeRequest, headers: Mapping[str, str], context: Context
) -> tuple[Invocation, float | None]:
    """The invocation for ``request`` plus its requested timeout (seconds), validated."""
    timeout = None
    if request.options.HasField("timeout"):
        timeout = request.options.timeout.ToTimedelta().total_seconds()
    _checked(request.agent, bool(request.messages), timeout)
    options = Options(
        params=_from_struct(request.options.params),
        idempotent=request.options.idempotent if request.options.HasField("idempotent") else True,
    )
    invocation = Invocation(
        agent=request.agent,
        messages=tuple(message_from_pb(m) for m in request.messages),
        context=context,
        options=options,
        headers=headers,
    )
    return invocation, timeout


def invocation_from_data(
    request: InvokeRequestData, headers: Mapping[str, str], context: Context
) -> tuple[Invocation, float | None]:
    """:func:`invocation_from_pb` for a request mapped without protobuf: the same checks, in the same order."""
    _checked(request.agent, bool(request.messages), request.timeout)
    invocation = Invocation(
        agent=request.agent,
        messages=request.messages,
        context=context,
        options=Options(params=request.params, idempotent=request.idempotent),
        headers=headers,
    )
    return invocation, request.timeout


def invocation_to_pb(invocation: Invocation) -> pb.InvokeRequest:
    options = pb.InvokeOptions(params=_struct(invocation.options.params) if invocation.options.params else None)
    if not invocation.options.idempotent:
        options.idempotent = False
    remaining = invocation.context.remaining()
    if remaining is not None:
        options.timeout.FromMilliseconds(int(remaining * 1000))
    return pb.InvokeRequest(
        agent=invocation.agent,
        messages=[message_to_pb(m) for m in invocation.messages],
        context=context_to_pb(invocation.context),
        options=options,
    )


def result_to_pb(result: Result, context: Context) -> pb.InvokeResponse:
    return pb.InvokeResponse(
        agent=result.agent,
        messages=[message_to_pb(m) for m in result.messages],
        context=context_to_pb(context),
        metadata=_struct(result.metadata) if result.metadata else None,
    )


def result_from_pb(response: pb.InvokeResponse) -> Result:
    return Result(
        agent=response.agent,
        messages=tuple(message_from_pb(m, Role.AGENT) for m in response.messages),
        metadata=_from_struct(response.metadata),
    )


def event_to_pb(event: Event, sequence: int) -> pb.Event:
    out = pb.Event(type=event.type, sequence=sequence)
    if event.message is not None:
        out.message.CopyFrom(message_to_pb(event.message))
    if event.data is not None:
        out.data.CopyFrom(_value(event.data))
    return out


def event_from_pb(event: pb.Event) -> Event:
    return Event(
        type=event.type,
        message=message_from_pb(event.message, Role.AGENT) if event.HasField("message") else None,
        data=_from_value(event.data) if event.HasField("data") else None,
    )


def agent_info(spec: AgentSpec, streaming: bool) -> pb.AgentInfo:
    return pb.AgentInfo(
        name=spec.name, kind=spec.kind, endpoint=spec.endpoint, description=spec.description, streaming=streaming
    )


def error_to_pb(error: GatewayError, request_id: str = "") -> pb.ErrorDetail:
    return pb.ErrorDetail(
        code=error.code.value,
        message=error.message,
        agent=error.agent,
        request_id=request_id,
        transient=error.transient,
        details=_struct(error.details) if error.details else None,
    )


# -- the protobuf JSON mapping (HTTP front) -----------------------------------


def to_json(message: ProtoMessage, *, with_defaults: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=False, always_print_fields_with_no_presence=with_defaults
    )
    return data


def error_json(error: GatewayError, request_id: str = "") -> dict[str, Any]:
    """The HTTP error body: ``{"error": ErrorDetail}`` with every field present.

    Built directly rather than through ``google.protobuf.Struct``, which would
    turn every integer in ``details`` into a float.
    """
    return {
        "error": {
            "code": error.code.value,
            "message": error.message,
            "agent": error.agent,
            "requestId": request_id,
            "transient": error.transient,
            "details": dict(error.details),
        }
    }


def parse_json(data: Any, message: ProtoMessage) -> None:
    """Fill ``message`` from decoded JSON; unknown fields are errors."""
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise InvalidRequest(f"malformed request: {str(exc).splitlines()[0]}") from None
