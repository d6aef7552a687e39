"""The shared state service, as ``AgentClient.state``: scoped, versioned keys with compare-and-set."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from agentgateway.v1 import state_pb2 as spb
from agentgateway.v1 import state_pb2_grpc as spb_grpc
from agentgateway_client.channel import Sidecar
from agentgateway_client.model import JSON, ClientError, StatusCode


class Scope(enum.StrEnum):
    """Who shares a key."""

    SESSION = "session"
    THREAD = "thread"
    USER = "user"
    WORKFLOW = "workflow"


ScopeName = Scope | str

_SCOPE_TO_PB = {
    Scope.SESSION: spb.STATE_SCOPE_SESSION,
    Scope.THREAD: spb.STATE_SCOPE_THREAD,
    Scope.USER: spb.STATE_SCOPE_USER,
    Scope.WORKFLOW: spb.STATE_SCOPE_WORKFLOW,
}


@dataclass(frozen=True, slots=True)
class StateValue:
    """A value as stored: JSON (kept as compact JSON text) or opaque bytes."""

    payload: bytes
    is_json: bool

    @classmethod
    def of_json(cls, value: JSON) -> StateValue:
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ClientError(StatusCode.INVALID_ARGUMENT, f"the value is not JSON-serializable: {exc}") from None
        return cls(text.encode(), True)

    @classmethod
    def of_bytes(cls, data: bytes) -> StateValue:
        return cls(bytes(data), False)

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


def _record(entry: spb.StateEntry) -> StateRecord:
    if entry.WhichOneof("value") == "bytes":
        value = StateValue.of_bytes(entry.bytes)
    else:
        value = StateValue(entry.json.encode(), True)
    expires = entry.expire_time.ToNanoseconds() / 1e9 if entry.HasField("expire_time") else None
    return StateRecord(entry.key, value, entry.etag, entry.version, entry.update_time.ToNanoseconds() / 1e9, expires)


class StateClient:
    """The shared state service, as ``AgentClient.state``.

    Scopes are ``"session"``, ``"thread"``, ``"user"`` and ``"workflow"``; the
    scope id is the one the inbound request carries unless ``scope_id`` names
    one. Values are JSON (``record.value.json()``) or ``bytes``.

        record = await client.state.get("session", "plan")
        await client.state.compare_and_set("session", "plan", record.etag, {"step": 2})
    """

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar
        self.stub = spb_grpc.StateServiceStub(sidecar.channel)  # type: ignore[no-untyped-call]  # generated, untyped

    async def get(self, scope: ScopeName, key: str, *, scope_id: str = "") -> StateRecord | None:
        """The record, or None when the key is absent or expired."""
        request = spb.GetStateRequest(scope=_SCOPE_TO_PB[Scope(scope)], scope_id=scope_id, key=key)
        try:
            return _record((await self.sidecar.call(self.stub.GetState, request)).entry)
        except ClientError as exc:
            if exc.code is StatusCode.NOT_FOUND:
                return None
            raise

    async def put(
        self,
        scope: ScopeName,
        key: str,
        value: JSON | bytes,
        *,
        if_match: str | None = None,
        create_only: bool = False,
        ttl: float | None = None,
        scope_id: str = "",
    ) -> StateRecord:
        """Write ``value`` (bytes stay bytes, anything else is JSON); raises ClientError
        with ``StatusCode.ABORTED`` when ``if_match`` or ``create_only`` does not hold."""
        request = spb.PutStateRequest(
            scope=_SCOPE_TO_PB[Scope(scope)],
            scope_id=scope_id,
            key=key,
            if_match=if_match or "",
            if_none_match=create_only,
        )
        if isinstance(value, bytes | bytearray):
            request.bytes = bytes(value)
        else:
            request.json = StateValue.of_json(value).payload.decode()
        if ttl is not None:
            request.ttl.FromNanoseconds(round(ttl * 1e9))
        return _record((await self.sidecar.call(self.stub.PutState, request)).entry)

    async def compare_and_set(
        self, scope: ScopeName, key: str, expected_etag: str | None, value: JSON | bytes, *, scope_id: str = ""
    ) -> StateRecord:
        """Write only if the key still has ``expected_etag`` (None: only if it is absent)."""
        if expected_etag is None:
            return await self.put(scope, key, value, create_only=True, scope_id=scope_id)
        return await self.put(scope, key, value, if_match=expected_etag, scope_id=scope_id)

    async def delete(self, scope: ScopeName, key: str, *, if_match: str | None = None, scope_id: str = "") -> bool:
        """True when the key was removed, False when it was absent."""
        request = spb.DeleteStateRequest(
            scope=_SCOPE_TO_PB[Scope(scope)], scope_id=scope_id, key=key, if_match=if_match or ""
        )
        try:
            await self.sidecar.call(self.stub.DeleteState, request)
        except ClientError as exc:
            if exc.code is StatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def list(
        self, scope: ScopeName, prefix: str = "", *, scope_id: str = "", page_size: int = 100, max_pages: int = 100
    ) -> list[StateRecord]:
        """Every live key with ``prefix`` in key order (at most ``max_pages`` pages)."""
        records: list[StateRecord] = []
        token = ""
        for _ in range(max_pages):
            request = spb.ListStateRequest(
                scope=_SCOPE_TO_PB[Scope(scope)],
                scope_id=scope_id,
                prefix=prefix,
                page_size=page_size,
                page_token=token,
            )
            response = await self.sidecar.call(self.stub.ListState, request)
            records.extend(_record(entry) for entry in response.entries)
            token = response.next_page_token
            if not token:
                break
        return records
