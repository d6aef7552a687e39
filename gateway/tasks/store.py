"""The A2A task store: one record per task, kept beside the runs that execute its turns.

A task is what an A2A client sees: an id, a context, a status, a history of
messages and the artifacts its turns produced. Each turn (a message sent to
the task) is executed as a background run (:mod:`gateway.runs`), so a task
is followed, cancelled and answered for by every gateway sharing the store.
The record holds the A2A shapes in their 1.0 JSON form (protobuf JSON of
``a2a.proto``); the front renders them for 0.3 clients.

Backends implement :class:`TaskStore`: SQLite (the state file; tasks survive a
restart) and Redis (every gateway of a fleet answers for every task). Both
keep their own tables and keys, apart from the runs'.
"""

from __future__ import annotations

import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from gateway.model import JSON, InvalidRequest

# A2A 1.0 task states (a2a.proto ``TaskState``).
SUBMITTED = "TASK_STATE_SUBMITTED"
WORKING = "TASK_STATE_WORKING"
COMPLETED = "TASK_STATE_COMPLETED"
FAILED = "TASK_STATE_FAILED"
CANCELED = "TASK_STATE_CANCELED"
INPUT_REQUIRED = "TASK_STATE_INPUT_REQUIRED"
REJECTED = "TASK_STATE_REJECTED"
AUTH_REQUIRED = "TASK_STATE_AUTH_REQUIRED"
STATES = (SUBMITTED, WORKING, COMPLETED, FAILED, CANCELED, INPUT_REQUIRED, REJECTED, AUTH_REQUIRED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED, REJECTED})
# The task waits for the client: a new message continues it.
INTERRUPTED = frozenset({INPUT_REQUIRED, AUTH_REQUIRED})
MAX_TASK_ID_LENGTH = 64
MAX_PAGE_SIZE = 100


def new_task_id() -> str:
    return str(uuid.uuid4())


def check_task_id(task_id: str) -> bool:
    """Whether ``task_id`` could be one of ours (anything else is not looked up at all)."""
    return 0 < len(task_id) <= MAX_TASK_ID_LENGTH and task_id.replace("-", "").replace("_", "").isalnum()


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task as stored. Times are Unix seconds; messages and artifacts are A2A 1.0 JSON."""

    task_id: str
    # The identity that created it: only that identity sees, continues and cancels it.
    owner: str
    agent: str
    context_id: str
    state: str = SUBMITTED
    # The status message (an agent message: why it failed, what input it needs).
    status_message: JSON = None
    history: tuple[JSON, ...] = ()
    artifacts: tuple[JSON, ...] = ()
    metadata: JSON = None
    # The run executing the current turn, and how many turns there were.
    run_id: str = ""
    turns: int = 0
    created_at: float = field(default_factory=time.time)
    # When the status last changed: ListTasks orders by it, newest first.
    updated_at: float = field(default_factory=time.time)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> TaskRecord:
        data: dict[str, Any] = json.loads(text)
        data["history"] = tuple(data.get("history") or ())
        data["artifacts"] = tuple(data.get("artifacts") or ())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def updated(self, **changes: Any) -> TaskRecord:
        return replace(self, updated_at=time.time(), **changes)


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """A ListTasks filter: the owner's tasks of one agent, newest status first."""

    owner: str
    agent: str
    context_id: str = ""
    state: str = ""
    updated_after: float | None = None
    page_size: int = 50
    # Continue after this cursor (a page's ``next_cursor``).
    cursor: str = ""


@dataclass(frozen=True, slots=True)
class TaskPage:
    tasks: tuple[TaskRecord, ...]
    next_cursor: str = ""
    total: int = 0


def cursor_of(record: TaskRecord) -> str:
    return f"{record.updated_at!r}|{record.task_id}"


def parse_cursor(cursor: str) -> tuple[float, str]:
    updated, sep, task_id = cursor.partition("|")
    try:
        if not sep:
            raise ValueError(cursor)
        return float(updated), task_id
    except ValueError:
        raise InvalidRequest("the page token is not one this gateway issued") from None


def matches(record: TaskRecord, query: TaskQuery) -> bool:
    """Whether a record passes the query's filters (owner and agent included)."""
    return (
        record.owner == query.owner
        and record.agent == query.agent
        and (not query.context_id or record.context_id == query.context_id)
        and (not query.state or record.state == query.state)
        and (query.updated_after is None or record.updated_at > query.updated_after)
    )


class TaskStore(ABC):
    """The backend interface; every method is atomic on its own."""

    def __init__(self, retention: float) -> None:
        self.retention = retention

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def save(self, record: TaskRecord) -> None:
        """Create or replace the task."""

    @abstractmethod
    async def get(self, task_id: str) -> TaskRecord | None: ...

    @abstractmethod
    async def list(self, query: TaskQuery) -> TaskPage:
        """The query's tasks, newest ``updated_at`` first, after its cursor."""

    @abstractmethod
    async def save_push_config(self, task_id: str, config_id: str, config: JSON) -> None: ...

    @abstractmethod
    async def push_configs(self, task_id: str) -> Sequence[tuple[str, JSON]]:
        """The task's push-notification configs, (id, config), oldest first."""

    @abstractmethod
    async def delete_push_config(self, task_id: str, config_id: str) -> None:
        """Forget one config (nothing happens when there is none)."""
