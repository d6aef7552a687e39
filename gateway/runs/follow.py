"""Following a run: the recorded events after a sequence id, then the live ones, then its record.

No gap and no duplicate: a run executing in this gateway is followed from memory (its recent
events stay there until they are written); a run executing elsewhere in the fleet is followed
by polling the store, where its events are always written before its final status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from gateway.config.schema import RunsConfig
from gateway.model import NotFound
from gateway.runs.active import ActiveRun
from gateway.runs.fleet import unless_lost
from gateway.runs.store import RunRecord, RunStore, StoredEvent


async def follow(
    store: RunStore, active_runs: Mapping[str, ActiveRun], config: RunsConfig, run_id: str, after: int
) -> AsyncIterator[StoredEvent | RunRecord]:
    """The run's events with sequence ids above ``after``, live until it ends, then its final record."""
    while True:
        active = active_runs.get(run_id)
        if active is not None:
            if after + 1 < active.window_start:
                # Older than the memory window: those were written already.
                batch = await store.events(run_id, after, min(500, active.window_start - after - 1))
            else:
                batch = active.after(after)
                if not batch:
                    changed = active.changed
                    await changed.wait()
                    continue
            for stored in batch:
                yield stored
            if batch:
                after = batch[-1].sequence
            continue
        batch = await store.events(run_id, after)
        if batch:
            for stored in batch:
                yield stored
            after = batch[-1].sequence
            continue
        record = await store.get(run_id)
        if record is None:
            raise NotFound(f"run {run_id} expired while it was followed")
        record = unless_lost(record, config.lease)
        if record.status.finished:
            # Events are written before the final status: one more read catches the last batch.
            tail = await store.events(run_id, after)
            for stored in tail:
                yield stored
            yield record
            return
        await asyncio.sleep(config.poll_interval)
