"""Structured logs: one JSON access line per call, one failure record with the story, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.config.schema import LoggingConfig
from gateway.telemetry.logging import configure_logging, redacted
from tests.conftest import GatewayFactory, Starter
from tests.helpers.http import body, post
from tests.policies.faults import FAIL_503, scripted


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    switches = (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    configure_logging(LoggingConfig(format="json", level="info", redact=["x-internal"]))
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)
    logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing = switches


def lines(stream: io.StringIO, logger: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [r for r in records if r["logger"] == logger]


async def test_access_and_failure_records(
    json_logs: io.StringIO, gateway_factory: GatewayFactory, serve_app: Starter, echo_url: str
) -> None:
    flaky = await serve_app(scripted(then=FAIL_503).app())
    text = (
        "policies:\n  std: {retry: {max_attempts: 2, backoff: {base: 1ms, max: 2ms}}}\n"
        f"agents:\n  echo: {{kind: http, endpoint: {echo_url}}}\n"
        f"  flaky: {{kind: http, endpoint: {flaky}, policies: [std]}}\n"
    )
    async with gateway_factory(text) as gw:
        http = f"http://{gw.addresses.http}/v1/agents"
        await post(f"{http}/echo/invoke", body("fine", context={"sessionId": "s-1"}))
        await post(f"{http}/flaky/invoke", body("please work", context={"sessionId": "s-2"}))
    access = lines(json_logs, "agent_gateway.access")
    assert [(a["agent"], a["status"], a["attempts"]) for a in access] == [("echo", "OK", 1), ("flaky", "UNAVAILABLE", 2)]
    assert access[0]["session_id"] == "s-1" and len(access[0]["trace_id"]) == 32
    assert access[0]["duration_ms"] > 0 and access[0]["level"] == "INFO"
    [failure] = lines(json_logs, "agent_gateway.failures")
    assert failure["agent"] == "flaky" and failure["code"] == "UNAVAILABLE"
    assert failure["input"] == "please work" and failure["session_id"] == "s-2"
    assert [r["attempt"] for r in failure["retries"]] == [1, 2]
    assert failure["trace_id"] == access[1]["trace_id"]


def test_secrets_are_masked(json_logs: io.StringIO) -> None:
    log = logging.getLogger("agent_gateway.test")
    log.warning("calling with Bearer abc.def.ghi", extra={"agw": {"headers": {"Authorization": "Bearer x", "x-internal": "1", "ok": "v"}}})
    [record] = lines(json_logs, "agent_gateway.test")
    assert "abc.def.ghi" not in record["message"] and "[redacted]" in record["message"]
    assert record["headers"] == {"Authorization": "[redacted]", "x-internal": "[redacted]", "ok": "v"}
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"
    assert redacted({"note": f"token {token} here"}) == {"note": "token [redacted] here"}
