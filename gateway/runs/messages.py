"""Runs on the wire: records as ``agentgateway.v1.Run`` and stored results and errors as messages."""

from __future__ import annotations

import json
from typing import Any

from agentgateway.v1 import gateway_pb2 as pb
from agentgateway.v1 import runs_pb2 as rpb
from gateway import wire
from gateway.runs.store import RunRecord, StoredEvent


def _error_detail(error: Any) -> pb.ErrorDetail:
    detail = pb.ErrorDetail()
    data = {k: v for k, v in dict(error).items() if k != "httpStatus" and not (k == "details" and not v)}
    wire.parse_json(data, detail)
    return detail


def run_to_pb(record: RunRecord) -> rpb.Run:
    run = rpb.Run(
        run_id=record.run_id,
        agent=record.agent,
        status=record.status.value,
        session_id=record.session_id,
        thread_id=record.thread_id,
        request_id=record.request_id,
        answered_by=record.answered_by,
        last_sequence=record.last_sequence,
        cancel_requested=record.cancel_requested,
        webhook_status=record.webhook_status,
        events_dropped=record.events_dropped,
    )
    run.create_time.FromNanoseconds(round(record.created_at * 1e9))
    run.update_time.FromNanoseconds(round(record.updated_at * 1e9))
    if record.finished_at is not None:
        run.finish_time.FromNanoseconds(round(record.finished_at * 1e9))
    if record.error is not None:
        run.error.CopyFrom(_error_detail(record.error))
    return run


def run_json(record: RunRecord) -> dict[str, Any]:
    """The JSON of ``Run`` with every scalar present (status polling reads them)."""
    return wire.to_json(run_to_pb(record), with_defaults=True)


def result_pb(record: RunRecord) -> pb.InvokeResponse:
    response = pb.InvokeResponse()
    wire.parse_json(record.result, response)
    return response


def error_body(record: RunRecord) -> tuple[int, dict[str, Any]]:
    """(HTTP status, ``{"error": ErrorDetail}``) of a failed or cancelled run."""
    error = dict(record.error or {})
    status = int(error.pop("httpStatus", 500))
    return status, {"error": error}


def error_pb(record: RunRecord) -> pb.ErrorDetail:
    return _error_detail(record.error or {})


def event_pb(stored: StoredEvent) -> pb.Event:
    event = pb.Event()
    wire.parse_json(json.loads(stored.payload), event)
    return event
