"""Background runs through the gRPC front (agentgateway.v1.RunService)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import runs_pb2 as rpb
from agentgateway.v1 import runs_pb2_grpc as rpb_grpc
from gateway import wire
from gateway.server.app import GatewayServer
from gateway.server.grpc import keepalive_options
from tests.conftest import GatewayFactory
from tests.helpers.runs import SlowAgent, agents_yaml


def request(agent: str, session: str = "s-g", **params: object) -> rpb.SubmitRunRequest:
    invocation = pb.InvokeRequest(
        agent=agent,
        messages=[pb.Message(role=pb.ROLE_USER, parts=[pb.Part(text="hello grpc")])],
        context=pb.Context(session_id=session),
    )
    invocation.options.params.update(params)
    return rpb.SubmitRunRequest(invocation=invocation)


@pytest.fixture
async def gw(gateway_factory: GatewayFactory, echo_url: str, slow_agent: SlowAgent) -> AsyncIterator[GatewayServer]:
    async with gateway_factory(agents_yaml(echo_url, slow_agent.url)) as server:
        yield server


@pytest.fixture
async def stub(gw: GatewayServer) -> AsyncIterator[rpb_grpc.RunServiceStub]:
    assert gw.addresses.grpc is not None
    async with grpc.aio.insecure_channel(gw.addresses.grpc) as channel:
        yield rpb_grpc.RunServiceStub(channel)  # type: ignore[no-untyped-call]


async def wait_status(stub: rpb_grpc.RunServiceStub, run_id: str, wanted: str) -> rpb.Run:
    deadline = time.monotonic() + 5
    while True:
        run: rpb.Run = (await stub.GetRun(rpb.GetRunRequest(run_id=run_id))).run
        if run.status == wanted or time.monotonic() > deadline:
            assert run.status == wanted, run
            return run
        await asyncio.sleep(0.02)


async def test_submit_poll_result_and_list(stub: rpb_grpc.RunServiceStub) -> None:
    run = (await stub.SubmitRun(request("echo", delay=0.05), timeout=5)).run
    assert run.status in ("queued", "running") and run.run_id.startswith("run_")
    with pytest.raises(grpc.aio.AioRpcError) as pending:
        await stub.GetRunResult(rpb.GetRunResultRequest(run_id=run.run_id))
    assert pending.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    done = await wait_status(stub, run.run_id, "succeeded")
    assert done.answered_by == "echo" and done.HasField("finish_time")
    result = (await stub.GetRunResult(rpb.GetRunResultRequest(run_id=run.run_id))).result
    assert wire.result_from_pb(result).text.startswith("echo: hello grpc")
    listed = await stub.ListRuns(rpb.ListRunsRequest(session_id="s-g"))
    assert [r.run_id for r in listed.runs] == [run.run_id]
    # Without session_id the caller's own session (metadata) is listed.
    listed = await stub.ListRuns(rpb.ListRunsRequest(), metadata=(("x-session-id", "s-g"),))
    assert [r.run_id for r in listed.runs] == [run.run_id]


async def test_watch_resumes_after_a_sequence(stub: rpb_grpc.RunServiceStub) -> None:
    run = (await stub.SubmitRun(request("slow", count=6, interval=0.03))).run
    head = []
    async for item in stub.WatchRun(rpb.WatchRunRequest(run_id=run.run_id)):
        head.append(item.event.sequence)
        if len(head) == 2:
            break  # the client goes away mid-run
    tail = [item async for item in stub.WatchRun(rpb.WatchRunRequest(run_id=run.run_id, after_sequence=head[-1]))]
    assert tail[-1].HasField("result")
    assert head + [item.event.sequence for item in tail[:-1]] == [1, 2, 3, 4, 5, 6]
    assert wire.result_from_pb(tail[-1].result).text == "w1 w2 w3 w4 w5 w6 "


async def test_cancel_and_watch_a_cancelled_run(stub: rpb_grpc.RunServiceStub, slow_agent: SlowAgent) -> None:
    run = (await stub.SubmitRun(request("slow", count=1000, interval=0.02))).run
    await asyncio.wait_for(slow_agent.started.wait(), 5)
    cancelled = (await stub.CancelRun(rpb.CancelRunRequest(run_id=run.run_id))).run
    assert cancelled.status == "cancelled" and cancelled.error.code == "CANCELLED"
    await asyncio.wait_for(slow_agent.disconnected.wait(), 5)
    with pytest.raises(grpc.aio.AioRpcError) as watched:
        async for _ in stub.WatchRun(rpb.WatchRunRequest(run_id=run.run_id)):
            pass
    assert watched.value.code() == grpc.StatusCode.CANCELLED
    trailer = dict(watched.value.trailing_metadata() or ())
    assert pb.ErrorDetail.FromString(trailer[wire.ERROR_TRAILER]).code == "CANCELLED"
    with pytest.raises(grpc.aio.AioRpcError) as result:
        await stub.GetRunResult(rpb.GetRunResultRequest(run_id=run.run_id))
    assert result.value.code() == grpc.StatusCode.CANCELLED


async def test_errors_have_the_right_codes(stub: rpb_grpc.RunServiceStub) -> None:
    for call, code in (
        (stub.GetRun(rpb.GetRunRequest(run_id="run_missing")), grpc.StatusCode.NOT_FOUND),
        (stub.GetRun(rpb.GetRunRequest(run_id="")), grpc.StatusCode.INVALID_ARGUMENT),
        (stub.SubmitRun(request("nobody")), grpc.StatusCode.NOT_FOUND),
        (stub.ListRuns(rpb.ListRunsRequest()), grpc.StatusCode.INVALID_ARGUMENT),
        (stub.ListRuns(rpb.ListRunsRequest(session_id="s", page_size=501)), grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call
        assert failure.value.code() == code


def test_keepalive_options_follow_the_listener() -> None:
    from gateway.config.schema import GrpcListener

    options = dict(keepalive_options(GrpcListener(keepalive_time=5, keepalive_timeout=2)))
    assert options["grpc.keepalive_time_ms"] == 5000 and options["grpc.keepalive_timeout_ms"] == 2000
    assert "grpc.keepalive_time_ms" not in dict(keepalive_options(GrpcListener(keepalive_time=None)))
