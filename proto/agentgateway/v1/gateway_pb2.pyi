import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]
    ROLE_AGENT: _ClassVar[Role]
    ROLE_SYSTEM: _ClassVar[Role]
    ROLE_TOOL: _ClassVar[Role]
ROLE_UNSPECIFIED: Role
ROLE_USER: Role
ROLE_AGENT: Role
ROLE_SYSTEM: Role
ROLE_TOOL: Role

class FileRef(_message.Message):
    __slots__ = ("uri", "media_type", "name")
    URI_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    uri: str
    media_type: str
    name: str
    def __init__(self, uri: _Optional[str] = ..., media_type: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Part(_message.Message):
    __slots__ = ("text", "data_json", "file", "data", "metadata_json", "metadata")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    text: str
    data_json: str
    file: FileRef
    data: _struct_pb2.Value
    metadata_json: str
    metadata: _struct_pb2.Struct
    def __init__(self, text: _Optional[str] = ..., data_json: _Optional[str] = ..., file: _Optional[_Union[FileRef, _Mapping]] = ..., data: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., metadata_json: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("role", "parts", "metadata_json", "metadata", "message_id")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    role: Role
    parts: _containers.RepeatedCompositeFieldContainer[Part]
    metadata_json: str
    metadata: _struct_pb2.Struct
    message_id: str
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., parts: _Optional[_Iterable[_Union[Part, _Mapping]]] = ..., metadata_json: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., message_id: _Optional[str] = ...) -> None: ...

class Context(_message.Message):
    __slots__ = ("session_id", "thread_id", "user_id", "request_id", "baggage")
    class BaggageEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BAGGAGE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    thread_id: str
    user_id: str
    request_id: str
    baggage: _containers.ScalarMap[str, str]
    def __init__(self, session_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., user_id: _Optional[str] = ..., request_id: _Optional[str] = ..., baggage: _Optional[_Mapping[str, str]] = ...) -> None: ...

class InvokeOptions(_message.Message):
    __slots__ = ("timeout", "params_json", "params", "idempotent")
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENT_FIELD_NUMBER: _ClassVar[int]
    timeout: _duration_pb2.Duration
    params_json: str
    params: _struct_pb2.Struct
    idempotent: bool
    def __init__(self, timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., params_json: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., idempotent: _Optional[bool] = ...) -> None: ...

class InvokeRequest(_message.Message):
    __slots__ = ("agent", "messages", "context", "options")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    agent: str
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    context: Context
    options: InvokeOptions
    def __init__(self, agent: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., context: _Optional[_Union[Context, _Mapping]] = ..., options: _Optional[_Union[InvokeOptions, _Mapping]] = ...) -> None: ...

class InvokeStreamRequest(_message.Message):
    __slots__ = ("agent", "messages", "context", "options")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    agent: str
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    context: Context
    options: InvokeOptions
    def __init__(self, agent: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., context: _Optional[_Union[Context, _Mapping]] = ..., options: _Optional[_Union[InvokeOptions, _Mapping]] = ...) -> None: ...

class InvokeResponse(_message.Message):
    __slots__ = ("agent", "messages", "context", "metadata_json", "metadata")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    agent: str
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    context: Context
    metadata_json: str
    metadata: _struct_pb2.Struct
    def __init__(self, agent: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., context: _Optional[_Union[Context, _Mapping]] = ..., metadata_json: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("type", "message", "data_json", "data", "sequence")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: Message
    data_json: str
    data: _struct_pb2.Value
    sequence: int
    def __init__(self, type: _Optional[str] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., data_json: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class InvokeStreamResponse(_message.Message):
    __slots__ = ("event", "result")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    event: Event
    result: InvokeResponse
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., result: _Optional[_Union[InvokeResponse, _Mapping]] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgentInfo(_message.Message):
    __slots__ = ("name", "kind", "endpoint", "description", "streaming")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    endpoint: str
    description: str
    streaming: bool
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., endpoint: _Optional[str] = ..., description: _Optional[str] = ..., streaming: _Optional[bool] = ...) -> None: ...

class RouteInfo(_message.Message):
    __slots__ = ("name", "match_agent", "targets")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MATCH_AGENT_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    name: str
    match_agent: str
    targets: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., match_agent: _Optional[str] = ..., targets: _Optional[_Iterable[str]] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents", "routes", "request_id")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentInfo]
    routes: _containers.RepeatedCompositeFieldContainer[RouteInfo]
    request_id: str
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentInfo, _Mapping]]] = ..., routes: _Optional[_Iterable[_Union[RouteInfo, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ErrorDetail(_message.Message):
    __slots__ = ("code", "message", "agent", "request_id", "transient", "details_json", "details")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSIENT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    agent: str
    request_id: str
    transient: bool
    details_json: str
    details: _struct_pb2.Struct
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., agent: _Optional[str] = ..., request_id: _Optional[str] = ..., transient: _Optional[bool] = ..., details_json: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
