"""What the shared state service stores: scopes, values and records.

The one definition of these types: the gateway's store (``gateway.state.store``) keeps them and
the client (``agentgateway_client.state``) reads them. The standard library only; no I/O here.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Self

from agentgateway_client.model import JSON, ClientError, StatusCode


class Scope(enum.StrEnum):
    """Who shares a key."""

    SESSION = "session"
    THREAD = "thread"
    USER = "user"
    WORKFLOW = "workflow"


@dataclass(frozen=True, slots=True)
class StateValue:
    """A value as stored: JSON (kept as compact JSON text) or opaque bytes."""

    payload: bytes
    is_json: bool

    @classmethod
    def of_json(cls, value: JSON) -> Self:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise cls.invalid(f"the value is not JSON-serializable: {exc}") from None
        return cls(text.encode(), True)

    @classmethod
    def of_bytes(cls, data: bytes) -> Self:
        return cls(bytes(data), False)

    @staticmethod
    def invalid(message: str) -> Exception:
        """The error of a value that cannot be stored (the gateway's subclass raises its own)."""
        return ClientError(StatusCode.INVALID_ARGUMENT, message)

    def json(self) -> JSON:
        """The decoded JSON value; only for ``is_json`` values."""
        if not self.is_json:
            raise TypeError("this state value holds bytes, not JSON")
        return json.loads(self.payload)

    @property
    def size(self) -> int:
        return len(self.payload)


@dataclass(frozen=True, slots=True)
class StateRecord:
    """One stored key: its value, its ETag (new on every write) and its expiry.

    ``version`` counts the writes since the key was created; ``etag`` is what conditional writes
    compare, and it never repeats, even after a delete and a re-create. Times are Unix seconds.
    """

    key: str
    value: StateValue
    etag: str
    version: int
    updated_at: float
    expires_at: float | None = None
