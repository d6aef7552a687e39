"""The run store: run records and their numbered events, in the state backend.

A run is one background invocation. Its record says who submitted it, for
which session, where it stands (:class:`RunStatus`) and, once finished, its
result or error (protobuf JSON, as the fronts send them). Its events are kept
in order under their sequence ids (1, 2, ...), so a client that reconnects
gets exactly the events it missed. Backends implement :class:`RunStore`:
SQLite (the state file; a finished run survives a restart) and Redis (every
gateway of a fleet answers for every run).

Writes to a record come only from the gateway executing the run, except the
cancel request, which any gateway may set and which is kept apart from the
record so the two never overwrite each other.
"""

from __future__ import annotations

import enum
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from gateway.model import JSON, InvalidRequest

MAX_RUN_ID_LENGTH = 64


class RunStatus(enum.StrEnum):
    """Where a run stands; the last three are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


def new_run_id() -> str:
    return "run_" + uuid.uuid4().hex


def check_run_id(run_id: str) -> str:
    if not run_id or len(run_id) > MAX_RUN_ID_LENGTH or not run_id.replace("_", "").replace("-", "").isalnum():
        raise InvalidRequest(f"{run_id[:80]!r} is not a run id (runs are named like run_0123abcd...)")
    return run_id


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as stored. Times are Unix seconds; ``result``/``error`` are protobuf JSON."""

    run_id: str
    agent: str
    # The identity that submitted it: only that identity sees and cancels the run.
    owner: str
    status: RunStatus = RunStatus.QUEUED
    session_id: str = ""
    thread_id: str = ""
    user_id: str = ""
    request_id: str = ""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    # The agent that answered (after routing, splits and fallbacks).
    answered_by: str = ""
    result: JSON = None
    error: JSON = None
    # The sequence id of the last event recorded.
    last_sequence: int = 0
    # Events not kept because the run passed runs.max_events.
    events_dropped: int = 0
    webhook_url: str = ""
    webhook_status: str = ""
    # The gateway process executing the run.
    gateway_id: str = ""
    # Set by any gateway asking for a cancel (kept apart from the rest of the record).
    cancel_requested: bool = False

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("cancel_requested")
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes, cancel_requested: bool = False) -> RunRecord:
        data: dict[str, Any] = json.loads(text)
        data["status"] = RunStatus(data["status"])
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known, cancel_requested=cancel_requested)

    def updated(self, **changes: Any) -> RunRecord:
        return replace(self, updated_at=time.time(), **changes)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One recorded event: its sequence id and its protobuf JSON (``agentgateway.v1.Event``)."""

    sequence: int
    payload: str


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of a session's runs, newest first; ``next_before`` continues it."""

    runs: tuple[RunRecord, ...]
    next_before: str | None = None


class RunStore(ABC):
    """The backend interface; every method is atomic on its own."""

    def __init__(self, retention: float) -> None:
        self.retention = retention

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def save(self, record: RunRecord) -> None:
        """Create or replace the record (the cancel request is left as it is)."""

    @abstractmethod
    async def get(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    async def append_events(self, run_id: str, events: Sequence[StoredEvent]) -> None:
        """Record events; their sequence ids continue the run's without a gap."""

    @abstractmethod
    async def events(self, run_id: str, after: int, limit: int = 500) -> list[StoredEvent]:
        """Recorded events with a sequence id above ``after``, in order."""

    @abstractmethod
    async def list_session(self, session_id: str, owner: str, *, before: str = "", limit: int = 50) -> RunPage:
        """The owner's runs in a session, newest first, older than the run ``before``."""

    @abstractmethod
    async def request_cancel(self, run_id: str) -> None: ...

    @abstractmethod
    async def cancels_requested(self, run_ids: Iterable[str]) -> set[str]:
        """Which of ``run_ids`` someone asked to cancel."""


def check_page_size(limit: int) -> int:
    if not 1 <= limit <= 500:
        raise InvalidRequest("a run listing's page size must be between 1 and 500")
    return limit
