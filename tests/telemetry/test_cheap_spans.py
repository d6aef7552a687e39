"""Spans nothing records (no processor, or unsampled) are cheap non-recording spans with the
ids and flags the SDK would give them; spans something records are the SDK's, as before."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.config.schema import Tracing
from gateway.telemetry.spans import GatewayTracer
from gateway.telemetry.tracing import build_tracer
from tests.conftest import GatewayFactory, Starter
from tests.helpers.http import body, post, seen_headers

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_SPAN = 0xB7AD6B7169203331


def remote_parent(flags: int, state: str = "") -> otel_context.Context:
    """The context a front extracts from a caller's traceparent/tracestate."""
    carrier = {"traceparent": f"00-{TRACE_ID:032x}-{PARENT_SPAN:016x}-{flags:02x}"}
    if state:
        carrier["tracestate"] = state
    return TraceContextTextMapPropagator().extract(carrier)


def cheap_tracer(sample_ratio: float = 1.0) -> GatewayTracer:
    tracer = build_tracer(TracerProvider(), Tracing(sample_ratio=sample_ratio))
    assert isinstance(tracer, GatewayTracer)
    return tracer


def recording(exporter: InMemorySpanExporter, sample_ratio: float = 1.0) -> GatewayTracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = build_tracer(provider, Tracing(sample_ratio=sample_ratio))
    assert isinstance(tracer, GatewayTracer)
    return tracer


def sdk_child(parent: otel_context.Context | None) -> SpanContext:
    """What the SDK itself makes (no processor: it still runs its sampler and id generator)."""
    span = TracerProvider().get_tracer("sdk").start_span("s", context=parent)
    span.end()
    return span.get_span_context()


@pytest.mark.parametrize("flags", [0x00, 0x01, 0x02, 0x03])
def test_a_child_keeps_the_trace_and_flags_and_gets_a_new_span_id(flags: int) -> None:
    parent = remote_parent(flags, "vendor=abc")
    span = cheap_tracer().start_span("child", context=parent)
    ids, sdk = span.get_span_context(), sdk_child(parent)
    assert isinstance(span, NonRecordingSpan) and not span.is_recording()
    assert ids.is_valid and not ids.is_remote
    assert ids.trace_id == TRACE_ID and ids.span_id not in (PARENT_SPAN, sdk.span_id)
    assert (ids.trace_flags, ids.trace_state) == (sdk.trace_flags, sdk.trace_state)
    assert ids.trace_state == TraceState([("vendor", "abc")])


def test_a_root_starts_a_fresh_trace_flagged_like_the_sdks() -> None:
    tracer = cheap_tracer()
    first, second = (tracer.start_span("root").get_span_context() for _ in range(2))
    sdk = sdk_child(None)
    assert first.is_valid and second.is_valid
    assert first.trace_id != second.trace_id and first.span_id != second.span_id
    assert first.trace_flags == second.trace_flags == sdk.trace_flags
    assert first.trace_flags.sampled and first.trace_state == sdk.trace_state


def test_an_unsampled_root_propagates_the_flag_off() -> None:
    span = cheap_tracer(sample_ratio=0.0).start_span("root")
    ids = span.get_span_context()
    assert ids.is_valid and not ids.trace_flags.sampled and not span.is_recording()
    assert ids.trace_flags.random_trace_id == sdk_child(None).trace_flags.random_trace_id


def test_the_current_span_is_the_cheap_one_inside_the_block_only() -> None:
    tracer = cheap_tracer()
    parent = remote_parent(0x01)
    token = otel_context.attach(parent)
    try:
        with tracer.start_as_current_span("outer") as outer:
            assert trace.get_current_span() is outer
            with tracer.start_as_current_span("inner") as inner:
                assert trace.get_current_span() is inner
                assert inner.get_span_context().trace_id == TRACE_ID
            assert trace.get_current_span() is outer
            # An attempt span parented through the current context (start_span, no context given).
            attempt = tracer.start_span("attempt")
            assert attempt.get_span_context().trace_id == TRACE_ID
            carrier: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(attempt))
            assert carrier["traceparent"] == f"00-{TRACE_ID:032x}-{attempt.get_span_context().span_id:016x}-01"
        with pytest.raises(ValueError, match="boom"), tracer.start_as_current_span("failing"):
            raise ValueError("boom")
        assert trace.get_current_span().get_span_context().span_id == PARENT_SPAN
    finally:
        otel_context.detach(token)


def test_spans_a_processor_sees_are_the_sdks_and_exported() -> None:
    exporter = InMemorySpanExporter()
    tracer = recording(exporter)
    with tracer.start_as_current_span("server", context=remote_parent(0x01)) as server:
        assert server.is_recording()
        tracer.start_span("attempt").end()
    attempt, exported = exporter.get_finished_spans()
    assert (exported.name, attempt.name) == ("server", "attempt")
    assert exported.context is not None and exported.context.trace_id == TRACE_ID
    assert exported.parent is not None and exported.parent.span_id == PARENT_SPAN
    assert attempt.parent is not None and attempt.parent.span_id == exported.context.span_id


def test_a_processor_added_later_sees_the_next_spans() -> None:
    provider = TracerProvider()
    tracer = build_tracer(provider, Tracing())
    assert not tracer.start_span("before").is_recording()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer.start_span("after").end()
    assert [s.name for s in exporter.get_finished_spans()] == ["after"]


def test_sampling_is_parent_based_and_roots_follow_the_ratio() -> None:
    exporter = InMemorySpanExporter()
    never, always = recording(exporter, sample_ratio=0.0), recording(exporter, sample_ratio=1.0)
    never.start_span("root").end()
    # The caller's decision wins over the ratio either way.
    never.start_span("sampled parent", context=remote_parent(0x01)).end()
    unsampled = always.start_span("unsampled parent", context=remote_parent(0x00))
    unsampled.end()
    assert [s.name for s in exporter.get_finished_spans()] == ["sampled parent"]
    assert not unsampled.is_recording() and unsampled.get_span_context().trace_id == TRACE_ID


def test_a_ratio_samples_about_that_share_of_roots() -> None:
    exporter = InMemorySpanExporter()
    tracer = recording(exporter, sample_ratio=0.25)
    flags = [tracer.start_span("root") for _ in range(2000)]
    for span in flags:
        span.end()
    sampled = len(exporter.get_finished_spans())
    assert sampled == sum(s.get_span_context().trace_flags.sampled for s in flags)
    assert 380 < sampled < 620  # 500 expected; 5+ standard deviations either side


def test_a_tracer_that_is_not_the_sdks_is_used_as_it_is() -> None:
    noop = trace.NoOpTracerProvider()
    assert isinstance(build_tracer(noop, Tracing()), trace.NoOpTracer)


def test_flags_other_than_sampled_and_random_are_not_inherited() -> None:
    parent = trace.set_span_in_context(NonRecordingSpan(SpanContext(TRACE_ID, PARENT_SPAN, True, TraceFlags(0xFF))))
    ids = cheap_tracer().start_span("child", context=parent).get_span_context()
    assert ids.trace_flags == sdk_child(parent).trace_flags == 0x03


# End to end: a gateway whose provider has no processor (the default: nothing exported).
NO_PROCESSOR = pytest.mark.parametrize("tracer_provider", [pytest.param(TracerProvider(), id="no-processor")])
INBOUND = f"00-{TRACE_ID:032x}-{PARENT_SPAN:016x}-01"


async def _traceparent_app(serve_app: Starter) -> str:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"traceparent": request.headers.get("traceparent")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return await serve_app(app)


def _parts(traceparent: str) -> tuple[int, int, int]:
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16
    return int(trace_id, 16), int(span_id, 16), int(flags, 16)


@NO_PROCESSOR
async def test_without_a_processor_upstreams_still_see_the_callers_trace_with_new_span_ids(
    gateway_factory: GatewayFactory, echo_url: str, serve_app: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    proxied = await _traceparent_app(serve_app)
    yaml = f"agents:\n  echo: {{kind: http, endpoint: {echo_url}}}\n  raw: {{kind: http, endpoint: {proxied}}}\n"
    caplog.set_level(logging.INFO, logger="agent_gateway.access")
    async with gateway_factory(yaml) as gw, aiohttp.ClientSession() as session:
        assert not isinstance(gw.gateway and gw.gateway.tracer, trace.NoOpTracer)
        base = f"http://{gw.addresses.http}"
        status, _, child = await post(f"{base}/v1/agents/echo/invoke", body(), {"traceparent": INBOUND})
        assert status == 200
        roots = [await post(f"{base}/v1/agents/echo/invoke", body()) for _ in range(2)]
        async with session.get(f"{base}/v1/proxy/raw/x", headers={"traceparent": INBOUND}) as response:
            assert response.status == 200
            passthrough = (await response.json())["traceparent"]
    trace_id, span_id, flags = _parts(seen_headers(child)["traceparent"])
    assert (trace_id, flags) == (TRACE_ID, 0x01) and span_id != PARENT_SPAN
    trace_id, span_id, flags = _parts(passthrough)
    assert (trace_id, flags) == (TRACE_ID, 0x01) and span_id != PARENT_SPAN
    fresh = [_parts(seen_headers(r[2])["traceparent"]) for r in roots]
    assert fresh[0][0] != fresh[1][0] and TRACE_ID not in (fresh[0][0], fresh[1][0])
    assert fresh[0][2] == fresh[1][2] == sdk_child(None).trace_flags
    # The access log names the trace the upstream saw.
    logged = [
        r.agw["trace_id"] for r in caplog.records if r.name == "agent_gateway.access" and r.agw["agent"] == "echo"
    ]
    assert logged == [f"{TRACE_ID:032x}", f"{fresh[0][0]:032x}", f"{fresh[1][0]:032x}"]


async def test_sample_ratio_zero_exports_nothing_new_but_still_propagates(
    gateway_factory: GatewayFactory, echo_url: str, span_exporter: InMemorySpanExporter
) -> None:
    yaml = f"telemetry: {{tracing: {{sample_ratio: 0}}}}\nagents:\n  echo: {{kind: http, endpoint: {echo_url}}}\n"
    async with gateway_factory(yaml) as gw:
        url = f"http://{gw.addresses.http}/v1/agents/echo/invoke"
        root = (await post(url, body()))[2]
        unsampled = (await post(url, body(), {"traceparent": INBOUND[:-2] + "00"}))[2]
        assert span_exporter.get_finished_spans() == ()
        sampled = (await post(url, body(), {"traceparent": INBOUND}))[2]
    trace_id, _, flags = _parts(seen_headers(root)["traceparent"])
    assert trace_id not in (0, TRACE_ID) and not flags & TraceFlags.SAMPLED
    assert _parts(seen_headers(unsampled)["traceparent"])[::2] == (TRACE_ID, 0x00)
    # The caller sampled its trace: the gateway's spans are exported, and the upstream is told so.
    trace_id, span_id, flags = _parts(seen_headers(sampled)["traceparent"])
    assert (trace_id, flags) == (TRACE_ID, 0x01)
    spans = span_exporter.get_finished_spans()
    assert {s.kind for s in spans} == {trace.SpanKind.SERVER, trace.SpanKind.CLIENT}
    assert all(s.context is not None and s.context.trace_id == TRACE_ID for s in spans)
    attempt = next(s for s in spans if s.kind == trace.SpanKind.CLIENT)
    assert attempt.context is not None and attempt.context.span_id == span_id
