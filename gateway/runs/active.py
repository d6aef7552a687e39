"""A run executing in this gateway, as its executor, its followers and the fleet watch see it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from gateway.runs.store import RunRecord, StoredEvent

# Recent events of a local run kept in memory for its followers (older ones are read from the store).
MEMORY_WINDOW = 1024

CancelReason = Literal["client", "shutdown"]


@dataclass(eq=False)
class ActiveRun:
    """A run executing in this gateway: its task, its recent events and who waits for them."""

    record: RunRecord
    task: asyncio.Task[None] | None = None
    started: bool = False
    cancel_reason: CancelReason | None = None
    # Recent events (sequence ids window_start, window_start + 1, ...).
    window: list[StoredEvent] = field(default_factory=list)
    window_start: int = 1
    # Events recorded in memory but not yet written to the store.
    pending: list[StoredEvent] = field(default_factory=list)
    written: int = 0
    flusher: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def after(self, sequence: int) -> list[StoredEvent]:
        index = sequence - self.window_start + 1
        return self.window[index:] if index >= 0 else []

    def trim(self) -> None:
        """Drop written events beyond the window (followers read them from the store)."""
        excess = len(self.window) - MEMORY_WINDOW
        removable = self.written - self.window_start + 1
        drop = min(excess, removable)
        if drop > 0:
            del self.window[:drop]
            self.window_start += drop

    def cancel(self, reason: CancelReason) -> None:
        """Cancel the run's task (a run not started yet sees the reason when it starts)."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        if self.started and self.task is not None:
            self.task.cancel()
