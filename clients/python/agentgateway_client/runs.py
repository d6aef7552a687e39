"""Background runs, as ``AgentClient.runs``: submit now, follow, fetch or cancel later."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

import grpc

from agentgateway.v1 import runs_pb2 as rpb
from agentgateway.v1 import runs_pb2_grpc as rpb_grpc
from agentgateway_client import wire
from agentgateway_client.channel import Sidecar
from agentgateway_client.model import JSON, Event, Message, Result


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A background run as the gateway reports it."""

    run_id: str
    agent: str
    status: str  # queued, running, succeeded, failed, cancelled
    last_sequence: int
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


def _run_info(run: rpb.Run) -> RunInfo:
    return RunInfo(run.run_id, run.agent, run.status, run.last_sequence, run.error.message)


class RunsClient:
    """Background runs, as ``AgentClient.runs``: submit now, follow, fetch or cancel later.

    run = await client.runs.submit("research", "a long question", session_id="s-1")
    async for sequence, event in client.runs.watch(run.run_id):  # resumable: after=<last seen>
        ...
    result = await client.runs.result(run.run_id)
    """

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar
        self.stub = rpb_grpc.RunServiceStub(sidecar.channel)  # type: ignore[no-untyped-call]  # generated, untyped

    async def submit(
        self,
        agent: str,
        input: str | Message | Sequence[Message],
        *,
        session_id: str | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
        params: Mapping[str, JSON] | None = None,
        timeout: float | None = None,
        webhook_url: str = "",
    ) -> RunInfo:
        """Start ``agent`` in the background; ``timeout`` is the only limit the run gets."""
        request, metadata, _ = self.sidecar.prepare(
            agent, input, session_id, thread_id, user_id, params, timeout, idempotent=False
        )
        submit = rpb.SubmitRunRequest(invocation=request, webhook_url=webhook_url)
        return _run_info((await self.sidecar.call(self.stub.SubmitRun, submit, metadata=metadata)).run)

    async def get(self, run_id: str) -> RunInfo:
        return _run_info((await self.sidecar.call(self.stub.GetRun, rpb.GetRunRequest(run_id=run_id))).run)

    async def result(self, run_id: str) -> Result:
        """The finished run's result; raises ClientError with the run's error, or while it runs."""
        answer = await self.sidecar.call(self.stub.GetRunResult, rpb.GetRunResultRequest(run_id=run_id))
        return wire.result_from_pb(answer.result)

    async def cancel(self, run_id: str) -> RunInfo:
        return _run_info((await self.sidecar.call(self.stub.CancelRun, rpb.CancelRunRequest(run_id=run_id))).run)

    async def watch(self, run_id: str, *, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """(sequence, event) pairs after ``after``, live until the run ends; a failed or
        cancelled run ends with ClientError. Reconnect with the last sequence to resume."""
        call = self.stub.WatchRun(
            rpb.WatchRunRequest(run_id=run_id, after_sequence=after), metadata=self.sidecar.metadata()
        )
        try:
            async for item in call:
                if item.HasField("event"):
                    yield item.event.sequence, wire.event_from_pb(item.event)
        except grpc.aio.AioRpcError as exc:
            raise wire.client_error(exc) from None
        finally:
            call.cancel()
