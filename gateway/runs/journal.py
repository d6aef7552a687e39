"""The journal of durable workflow runs: each step's outcome, written before the next starts.

A workflow with ``durable: true`` records its run (the workflow, the invocation
that started it, the gateway holding its lease) and, as each step finishes,
the step's outcome under its name. A run whose gateway died or drained has a
lapsed lease; another gateway (or the same one restarted) takes it over and
runs the workflow again from the start with the recorded outcomes replayed:
a step with an outcome is not called again, so the run continues from the
last completed step, pending compensations included (they are steps too).
Each call carries the idempotency key ``<run id>:<step>``, so an agent can
recognize the one call that was in flight when the gateway died.

Kept in tables/keys of its own beside the run store: SQLite (the state file)
or Redis (a fleet).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

from gateway.model import JSON


@dataclass(frozen=True, slots=True)
class JournaledRun:
    """One durable run as journaled: what to run again if its gateway is gone."""

    run_id: str
    workflow: str
    # The invocation that started it (agent, messages, ids, baggage), as JSON.
    invocation: JSON
    gateway_id: str = ""
    finished: bool = False
    # The answer or the error once finished (protobuf-style JSON).
    outcome: JSON = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> JournaledRun:
        data: dict[str, Any] = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class WorkflowJournal(ABC):
    """The backend interface; each method is atomic on its own."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def begin(self, run: JournaledRun, lease: float) -> None:
        """Record a new run, leased to ``run.gateway_id`` for ``lease`` seconds."""

    @abstractmethod
    async def record_step(self, run_id: str, step: str, outcome: JSON) -> None:
        """Record a step's outcome (a later record of the same step is ignored)."""

    @abstractmethod
    async def steps(self, run_id: str) -> dict[str, JSON]: ...

    @abstractmethod
    async def finish(self, run_id: str, outcome: JSON) -> None: ...

    @abstractmethod
    async def get(self, run_id: str) -> JournaledRun | None: ...

    @abstractmethod
    async def renew(self, run_ids: list[str], gateway_id: str, lease: float) -> None:
        """Extend the leases this gateway holds."""

    @abstractmethod
    async def release(self, run_ids: list[str], gateway_id: str) -> None:
        """Give the leases up now (a draining gateway): another gateway may take the runs at once."""

    @abstractmethod
    async def put_wait(self, run_id: str, step: str, pending: JSON) -> JSON:
        """Record a pending wait unless one is recorded (a resumed run keeps its expiry); returns the one kept."""

    @abstractmethod
    async def get_wait(self, run_id: str, step: str) -> JSON: ...

    @abstractmethod
    async def claim_lapsed(self, gateway_id: str, lease: float, limit: int = 16) -> list[JournaledRun]:
        """Take over unfinished runs whose lease lapsed; each is given to one gateway only."""
