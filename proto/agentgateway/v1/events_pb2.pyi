from agentgateway.v1 import gateway_pb2 as _gateway_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PublishEventRequest(_message.Message):
    __slots__ = ("subject", "data_json", "data", "event_id", "context")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    data_json: str
    data: _struct_pb2.Value
    event_id: str
    context: _gateway_pb2.Context
    def __init__(self, subject: _Optional[str] = ..., data_json: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., event_id: _Optional[str] = ..., context: _Optional[_Union[_gateway_pb2.Context, _Mapping]] = ...) -> None: ...

class PublishEventResponse(_message.Message):
    __slots__ = ("event_id", "subject", "duplicate")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    subject: str
    duplicate: bool
    def __init__(self, event_id: _Optional[str] = ..., subject: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...
