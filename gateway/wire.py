"""The mapping between the protobuf wire contract and :mod:`gateway.model`.

Both fronts and the gRPC upstream adapter use it, so gRPC and HTTP (the protobuf
JSON mapping of the same messages) speak one model; its messages, parts and results
map as the Python client's (``agentgateway_client.wire``) do, with the same code.
No I/O here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message as ProtoMessage

from agentgateway.v1 import gateway_pb2 as pb

# Messages, parts, contexts, results and events map one way for the gateway and its client: the
# client's mapping (agentgateway_client.wire) writes them, and reads them here with the gateway's
# strict JSON decoder and InvalidRequest.
from agentgateway_client.wire import (
    ERROR_TRAILER,
    Reader,
    context_to_pb,
    invoke_request,
    json_text,
    message_to_pb,
    object_text,
    part_to_pb,
    stream_request,
)
from gateway import json_input
from gateway.model import (
    JSON,
    AgentSpec,
    Context,
    Event,
    GatewayError,
    InvalidRequest,
    Invocation,
    Message,
    Result,
)

__all__ = [
    "ERROR_TRAILER",
    "InvokeRequestData",
    "agent_info",
    "check_request",
    "context_from_pb",
    "context_to_pb",
    "error_details",
    "error_json",
    "error_to_pb",
    "event_data",
    "event_from_pb",
    "event_to_pb",
    "invocation_to_pb",
    "json_text",
    "message_from_pb",
    "message_to_pb",
    "parse_json",
    "part_from_pb",
    "part_to_pb",
    "request_data_from_pb",
    "result_from_pb",
    "result_to_pb",
    "stream_request",
    "to_json",
]

# -- structured values: JSON text in the `*_json` fields ------------------------
#
# A google.protobuf.Struct holds every number as a double (7 comes back as 7.0,
# 2**63 loses digits), so structured data crosses the wire as JSON text, which
# keeps the JSON value exactly. The legacy Struct/Value fields are only read.


def _from_json_text(text: str, field: str) -> JSON:
    # The one decoder of caller JSON (no unpaired surrogates, no NaN, depth checked before parsing).
    # These fields carry agents' replies too, so the bound is the hard one, not the listener's.
    value: JSON = json_input.loads(text, json_input.MAX_DEPTH_LIMIT, f"{field} JSON text")
    return value


_READER = Reader(_from_json_text, InvalidRequest)
_object = _READER.object
part_from_pb = _READER.part
message_from_pb = _READER.message
context_from_pb = _READER.context
result_from_pb = _READER.result
event_from_pb = _READER.event
# An event payload (``Event``, ``PublishEventRequest``): its JSON text, else the legacy Value, else None.
event_data = _READER.value


@dataclass(frozen=True, slots=True)
class _Shape:
    """Where a message's JSON form holds structured values, for the protobuf JSON mapping."""

    # The legacy Struct/Value field's JSON key (either spelling) -> (its twin's JSON key, object only).
    twins: Mapping[str, tuple[str, bool]]
    # The twin's JSON key -> the key its value is printed under (the legacy field's).
    printed: Mapping[str, str]
    # The JSON key (either spelling) of a message field that holds structured values further down.
    children: Mapping[str, Descriptor]

    @property
    def reaches_values(self) -> bool:
        return bool(self.twins or self.children)


_STRUCTURED = {"google.protobuf.Struct": True, "google.protobuf.Value": False}


@functools.cache
def _shape(descriptor: Descriptor) -> _Shape:
    twins: dict[str, tuple[str, bool]] = {}
    printed: dict[str, str] = {}
    children: dict[str, Descriptor] = {}
    for field in descriptor.fields:
        kind = field.message_type
        if kind is None or kind.GetOptions().map_entry:
            continue
        twin = descriptor.fields_by_name.get(field.name + "_json")
        if kind.full_name in _STRUCTURED and twin is not None:
            for key in (field.name, field.json_name):
                twins[key] = (twin.json_name, _STRUCTURED[kind.full_name])
            printed[twin.json_name] = field.json_name
        elif kind.full_name.startswith("agentgateway.") and _shape(kind).reaches_values:
            for key in (field.name, field.json_name):
                children[key] = kind
    return _Shape(twins, printed, children)


def _outlined(data: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    """A copy of decoded JSON with each structured value moved to its ``*_json`` twin as text.

    Protobuf then parses everything else as it always does; values it would refuse
    (NaN, a non-object where an object belongs, null) are left for it to refuse or read.
    """
    shape = _shape(descriptor)
    out: dict[str, Any] = {}
    for key, value in data.items():
        twin = shape.twins.get(key)
        if twin is not None:
            twin_key, object_only = twin
            if value is not None and twin_key not in data and (type(value) is dict or not object_only):
                with contextlib.suppress(TypeError, ValueError):  # not JSON: protobuf refuses it its own way
                    value, key = json_text(value), twin_key
        elif (child := shape.children.get(key)) is not None:
            if type(value) is dict:
                value = _outlined(value, child)
            elif type(value) is list:
                value = [_outlined(item, child) if type(item) is dict else item for item in value]
        out[key] = value
    return out


def _inlined(data: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    """Printed protobuf JSON with each ``*_json`` twin's text put back as a JSON value, in place."""
    shape = _shape(descriptor)
    for twin_key, key in shape.printed.items():
        if twin_key in data:
            text = data.pop(twin_key)
            if text:  # empty (printed with the defaults): unset, like the message field it replaces
                data[key] = _from_json_text(text, twin_key)
    for key, child in shape.children.items():
        value = data.get(key)
        if type(value) is dict:
            _inlined(value, child)
        elif type(value) is list:
            for item in value:
                _inlined(item, child)
    return data


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


def check_request(request: InvokeRequestData) -> None:
    """The checks every front's InvokeRequest passes, in one order."""
    if not request.agent:
        raise InvalidRequest("the 'agent' field is required: name the agent to call")
    if not request.messages:
        raise InvalidRequest("at least one message is required in 'messages'")
    if request.timeout is not None and request.timeout <= 0:
        raise InvalidRequest("options.timeout must be positive")


def request_data_from_pb(request: pb.InvokeRequest) -> InvokeRequestData:
    """A protobuf ``InvokeRequest`` (the gRPC front's, or an HTTP body only protobuf could read) in the model."""
    options = request.options
    has_params = options.params_json or options.HasField("params")
    return InvokeRequestData(
        agent=request.agent,
        messages=tuple([message_from_pb(m) for m in request.messages]),
        context=context_from_pb(request.context),
        params=_object(options.params_json, options.params, "InvokeOptions.params_json") if has_params else {},
        idempotent=options.idempotent if options.HasField("idempotent") else True,
        timeout=options.timeout.ToTimedelta().total_seconds() if options.HasField("timeout") else None,
    )


def invocation_to_pb(invocation: Invocation) -> pb.InvokeRequest:
    return invoke_request(
        invocation.agent,
        invocation.messages,
        invocation.context,
        invocation.options.params,
        invocation.options.idempotent,
    )


def result_to_pb(result: Result, context: Context) -> pb.InvokeResponse:
    return pb.InvokeResponse(
        agent=result.agent,
        messages=[message_to_pb(m) for m in result.messages],
        context=context_to_pb(context),
        metadata_json=object_text(result.metadata),
    )


def event_to_pb(event: Event, sequence: int) -> pb.Event:
    out = pb.Event(type=event.type, sequence=sequence)
    if event.message is not None:
        out.message.CopyFrom(message_to_pb(event.message))
    if event.data is not None:
        out.data_json = json_text(event.data)
    return out


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
        details_json=object_text(error.details),
    )


def error_details(detail: pb.ErrorDetail) -> dict[str, JSON]:
    """The ``details`` of an ``ErrorDetail`` received over gRPC."""
    return _object(detail.details_json, detail.details, "ErrorDetail.details_json")


# -- the protobuf JSON mapping (HTTP front) -----------------------------------


def to_json(message: ProtoMessage, *, with_defaults: bool = False) -> dict[str, Any]:
    """The protobuf JSON mapping of ``message``, structured values inline and exact
    (``"data": {"n": 7}``, not the ``*_json`` text)."""
    data: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=False, always_print_fields_with_no_presence=with_defaults
    )
    return _inlined(data, cast(Descriptor, message.DESCRIPTOR))


def error_json(error: GatewayError, request_id: str = "") -> dict[str, Any]:
    """The HTTP error body: ``{"error": ErrorDetail}`` with every field present.

    Built directly: the fields are known and ``details`` stays exact.
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
    """Fill ``message`` from decoded JSON; unknown fields are errors. Structured
    values go to their ``*_json`` fields as text, so they stay exact."""
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    try:
        json_format.ParseDict(
            _outlined(data, cast(Descriptor, message.DESCRIPTOR)), message, ignore_unknown_fields=False
        )
    except json_format.ParseError as exc:
        raise InvalidRequest(f"malformed request: {str(exc).splitlines()[0]}") from None
