"""The shared state store: scoped keys, versioned values, conditional writes.

A key lives in a *scope*: ``session`` (every agent of one session), ``thread``
(a conversation across sessions), ``user`` (all of a user's sessions) or
``workflow`` (one pattern run). Every write gives the value a new opaque ETag;
writes and deletes may be conditional on it (compare-and-set), or on the key's
absence (create-only). Backends implement :class:`StateStore`; the fronts never
see which one is in use.
"""

from __future__ import annotations

import math
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Self

# Scopes and records are the client's types (one definition); the gateway's values are the
# client's too, but refuse what cannot be stored with InvalidRequest.
from agentgateway_client import state_values as _shared
from agentgateway_client.state_values import Scope as Scope
from agentgateway_client.state_values import StateRecord as StateRecord
from gateway import json_input
from gateway.model import Conflict, GatewayError, InvalidRequest, ResourceExhausted, StatusCode

MAX_KEY_LENGTH = 512
MAX_SCOPE_ID_LENGTH = 256
# "*" in If-Match: the key must exist, whatever its ETag.
ANY_ETAG = "*"


@dataclass(frozen=True, slots=True)
class ScopeRef:
    """One scope instance: ``session`` ``s-42``."""

    scope: Scope
    id: str

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidRequest(f"the {self.scope.value} scope needs an id")
        if len(self.id) > MAX_SCOPE_ID_LENGTH or not _printable(self.id):
            raise InvalidRequest(f"a scope id must be at most {MAX_SCOPE_ID_LENGTH} printable characters")


def _printable(text: str) -> bool:
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def check_key(key: str) -> str:
    """Validate a key: 1..512 printable characters (``/`` is fine and lists well by prefix)."""
    if not key:
        raise InvalidRequest("a state key cannot be empty")
    if len(key) > MAX_KEY_LENGTH or not _printable(key):
        raise InvalidRequest(f"a state key must be at most {MAX_KEY_LENGTH} printable characters")
    return key


class StateValue(_shared.StateValue):
    """A value as stored: JSON (kept as compact JSON text) or opaque bytes
    (the client's type, raising the gateway's error)."""

    __slots__ = ()
    invalid = staticmethod(InvalidRequest)

    @classmethod
    def of_json_text(cls, text: str, max_depth: int = json_input.DEFAULT_MAX_DEPTH) -> Self:
        """From JSON text (the gRPC ``json`` field): validated (as every caller's JSON) and made compact."""
        return cls.of_json(json_input.loads(text, max_depth, "json value"))


@dataclass(frozen=True, slots=True)
class StateLimits:
    """What one scope may hold."""

    max_value_bytes: int = 1024 * 1024
    max_keys_per_scope: int = 10_000


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a prefix listing; ``next_after`` continues it when set."""

    records: tuple[StateRecord, ...]
    next_after: str | None = None


class ValueTooLarge(InvalidRequest):
    """A value is larger than ``state.limits.max_value_bytes``."""

    http_status = 413


class ScopeFull(ResourceExhausted):
    """A new key would exceed ``state.limits.max_keys_per_scope``; retrying will not help."""

    http_status = 413
    transient = False


class StateUnavailable(GatewayError):
    """The state backend cannot be reached (Redis down); worth retrying later."""

    code = StatusCode.UNAVAILABLE
    http_status = 503
    transient = True


def new_etag() -> str:
    return uuid.uuid4().hex


def etag_conflict(key: str, if_match: str | None, if_none_match: bool, current: StateRecord | None) -> None:
    """Raise :class:`Conflict` when the write's precondition does not hold for ``current``."""
    if if_none_match and current is not None:
        raise Conflict(
            f"state key {key!r} already exists (create-only write)",
            details={"key": key, "etag": current.etag},
        )
    if if_match is None:
        return
    if current is None:
        raise Conflict(f"state key {key!r} does not exist, so its ETag cannot match", details={"key": key})
    if if_match != ANY_ETAG and if_match != current.etag:
        raise Conflict(
            f"state key {key!r} changed since you read it (ETag mismatch): read it again and retry",
            details={"key": key, "etag": current.etag},
        )


class StateStore(ABC):
    """The backend interface: every method is atomic on its own.

    ``put`` with ``if_match`` is the compare-and-set: it writes only when the key's
    current ETag equals ``if_match`` (``"*"``: when the key exists at all), else it
    raises :class:`~gateway.model.Conflict`. ``if_none_match`` makes it create-only.
    ``ttl`` (seconds) falls back to ``default_ttl`` of the scope, then to no expiry.
    """

    def __init__(self, limits: StateLimits | None = None, default_ttl: dict[Scope, float] | None = None) -> None:
        self.limits = limits or StateLimits()
        self.default_ttl = dict(default_ttl or {})

    @abstractmethod
    async def open(self) -> None:
        """Connect / create the schema; called once before the first operation."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def get(self, scope: ScopeRef, key: str) -> StateRecord | None:
        """The live record, or None when the key is absent or expired."""

    @abstractmethod
    async def put(
        self,
        scope: ScopeRef,
        key: str,
        value: StateValue,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        ttl: float | None = None,
    ) -> StateRecord:
        """Write ``value``; returns the new record (with its new ETag)."""

    @abstractmethod
    async def delete(self, scope: ScopeRef, key: str, *, if_match: str | None = None) -> bool:
        """Remove the key; False when it was absent (and no ``if_match`` was given)."""

    @abstractmethod
    async def list(self, scope: ScopeRef, prefix: str = "", *, after: str = "", limit: int = 100) -> Page:
        """Live keys starting with ``prefix`` in key order, after the key ``after``."""

    async def compare_and_set(
        self, scope: ScopeRef, key: str, expected_etag: str | None, value: StateValue, *, ttl: float | None = None
    ) -> StateRecord:
        """Write only if the key's ETag is ``expected_etag`` (None: only if the key is absent)."""
        if expected_etag is None:
            return await self.put(scope, key, value, if_none_match=True, ttl=ttl)
        return await self.put(scope, key, value, if_match=expected_etag, ttl=ttl)

    def check_write(self, key: str, value: StateValue, ttl: float | None, scope: Scope) -> float | None:
        """Validate a write before touching the backend; returns its time to live in seconds."""
        check_key(key)
        if value.size > self.limits.max_value_bytes:
            raise ValueTooLarge(
                f"the value for {key!r} is {value.size} bytes; the limit is {self.limits.max_value_bytes} "
                "(state.limits.max_value_bytes)",
                details={"key": key, "size": value.size, "limit": self.limits.max_value_bytes},
            )
        effective = ttl if ttl is not None else self.default_ttl.get(scope)
        if effective is not None and (not math.isfinite(effective) or effective <= 0):
            raise InvalidRequest("a ttl must be a positive number of seconds")
        return effective

    def scope_full(self, scope: ScopeRef) -> ScopeFull:
        limit = self.limits.max_keys_per_scope
        return ScopeFull(
            f"the {scope.scope.value} scope {scope.id!r} already holds {limit} keys "
            "(state.limits.max_keys_per_scope): delete keys or raise the limit",
            details={"scope": scope.scope.value, "limit": limit},
        )


def check_listing(limit: int) -> None:
    if not 1 <= limit <= 1000:
        raise InvalidRequest("a listing's limit must be between 1 and 1000")


def now() -> float:
    return time.time()
