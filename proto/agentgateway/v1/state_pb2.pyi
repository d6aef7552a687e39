import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StateScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATE_SCOPE_UNSPECIFIED: _ClassVar[StateScope]
    STATE_SCOPE_SESSION: _ClassVar[StateScope]
    STATE_SCOPE_THREAD: _ClassVar[StateScope]
    STATE_SCOPE_USER: _ClassVar[StateScope]
    STATE_SCOPE_WORKFLOW: _ClassVar[StateScope]
STATE_SCOPE_UNSPECIFIED: StateScope
STATE_SCOPE_SESSION: StateScope
STATE_SCOPE_THREAD: StateScope
STATE_SCOPE_USER: StateScope
STATE_SCOPE_WORKFLOW: StateScope

class StateEntry(_message.Message):
    __slots__ = ("scope", "scope_id", "key", "json", "bytes", "etag", "version", "update_time", "expire_time")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    scope: StateScope
    scope_id: str
    key: str
    json: str
    bytes: bytes
    etag: str
    version: int
    update_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, scope: _Optional[_Union[StateScope, str]] = ..., scope_id: _Optional[str] = ..., key: _Optional[str] = ..., json: _Optional[str] = ..., bytes: _Optional[bytes] = ..., etag: _Optional[str] = ..., version: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetStateRequest(_message.Message):
    __slots__ = ("scope", "scope_id", "key")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    scope: StateScope
    scope_id: str
    key: str
    def __init__(self, scope: _Optional[_Union[StateScope, str]] = ..., scope_id: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class GetStateResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: StateEntry
    def __init__(self, entry: _Optional[_Union[StateEntry, _Mapping]] = ...) -> None: ...

class PutStateRequest(_message.Message):
    __slots__ = ("scope", "scope_id", "key", "json", "bytes", "if_match", "if_none_match", "ttl")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    IF_MATCH_FIELD_NUMBER: _ClassVar[int]
    IF_NONE_MATCH_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    scope: StateScope
    scope_id: str
    key: str
    json: str
    bytes: bytes
    if_match: str
    if_none_match: bool
    ttl: _duration_pb2.Duration
    def __init__(self, scope: _Optional[_Union[StateScope, str]] = ..., scope_id: _Optional[str] = ..., key: _Optional[str] = ..., json: _Optional[str] = ..., bytes: _Optional[bytes] = ..., if_match: _Optional[str] = ..., if_none_match: _Optional[bool] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class PutStateResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: StateEntry
    def __init__(self, entry: _Optional[_Union[StateEntry, _Mapping]] = ...) -> None: ...

class DeleteStateRequest(_message.Message):
    __slots__ = ("scope", "scope_id", "key", "if_match")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    IF_MATCH_FIELD_NUMBER: _ClassVar[int]
    scope: StateScope
    scope_id: str
    key: str
    if_match: str
    def __init__(self, scope: _Optional[_Union[StateScope, str]] = ..., scope_id: _Optional[str] = ..., key: _Optional[str] = ..., if_match: _Optional[str] = ...) -> None: ...

class DeleteStateResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStateRequest(_message.Message):
    __slots__ = ("scope", "scope_id", "prefix", "page_size", "page_token")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    scope: StateScope
    scope_id: str
    prefix: str
    page_size: int
    page_token: str
    def __init__(self, scope: _Optional[_Union[StateScope, str]] = ..., scope_id: _Optional[str] = ..., prefix: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListStateResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[StateEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[StateEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
