"""The fleet's view of runs: cancels asked at another gateway, leases, runs whose gateway died.

Every gateway of a fleet shares the run store. A gateway refreshes the records of the runs it
executes (their lease); a run not refreshed for ``runs.lease`` is reported failed, as the
gateway running it died. A cancel asked at another gateway is written to the store and picked
up here within ``runs.poll_interval``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from gateway import wire
from gateway.config.schema import RunsConfig
from gateway.model import GatewayError, UpstreamUnavailable
from gateway.runs.active import ActiveRun
from gateway.runs.store import RunRecord, RunStatus, RunStore

log = logging.getLogger("agent_gateway.runs")


def unless_lost(record: RunRecord, lease: float) -> RunRecord:
    """A run another gateway stopped refreshing is reported failed: that gateway died."""
    if record.status.finished or time.time() - record.updated_at <= lease:
        return record
    error = UpstreamUnavailable(
        f"the gateway running this run stopped refreshing it {lease:g}s ago "
        "(it crashed or lost its store): submit it again",
        agent=record.agent,
    )
    detail = wire.error_json(error, record.request_id)["error"]
    return record.updated(status=RunStatus.FAILED, error={**detail, "httpStatus": error.status})


class FleetWatch:
    """Cancels local runs that another gateway was asked to cancel; renews their leases."""

    def __init__(self, store: RunStore, config: RunsConfig, active: Mapping[str, ActiveRun]) -> None:
        self.store = store
        self.config = config
        self._active = active

    async def run(self) -> None:
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.config.poll_interval)
            if not self._active:
                continue
            if time.monotonic() - renewed >= self.config.lease / 3:
                renewed = time.monotonic()
                await self._renew_leases()
            try:
                asked = await self.store.cancels_requested(list(self._active))
            except GatewayError as exc:
                log.warning("could not look for run cancels: %s", exc)
                continue
            for run_id in asked:
                if (active := self._active.get(run_id)) is not None:
                    active.cancel("client")

    async def _renew_leases(self) -> None:
        """Refresh ``updated_at`` of the runs executing here, so the fleet knows they are alive."""
        for active in list(self._active.values()):
            if active.record.status.finished:
                continue
            active.record = active.record.updated()  # stamps updated_at
            try:
                await self.store.save(active.record)
            except GatewayError as exc:
                log.warning("could not renew the lease of run %s: %s", active.record.run_id, exc)
