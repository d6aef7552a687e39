"""Failure classification: every upstream failure maps to a transient or permanent model error."""

from __future__ import annotations

import grpc
import pytest

from gateway.grpc_transport import rpc_error
from gateway.model import UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from gateway.transport import retry_after_seconds, status_error


@pytest.mark.parametrize(
    ("status", "kind", "transient"),
    [
        (408, UpstreamTimeout, True),
        (429, UpstreamUnavailable, True),
        (502, UpstreamUnavailable, True),
        (503, UpstreamUnavailable, True),
        (504, UpstreamTimeout, True),
        (400, UpstreamRejected, False),
        (404, UpstreamRejected, False),
        (422, UpstreamRejected, False),
        (500, UpstreamError, False),
    ],
)
def test_http_status(status: int, kind: type[UpstreamError], transient: bool) -> None:
    error = status_error("a", status, "body", {"retry-after": "3"})
    assert type(error) is kind
    assert error.transient is transient
    assert error.details["upstream_status"] == status
    assert error.agent == "a"
    if status in (429, 502, 503):
        assert error.retry_after == 3.0


def test_retry_after_forms() -> None:
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize(
    ("code", "kind", "transient"),
    [
        (grpc.StatusCode.UNAVAILABLE, UpstreamUnavailable, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, UpstreamUnavailable, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, UpstreamTimeout, True),
        (grpc.StatusCode.INVALID_ARGUMENT, UpstreamRejected, False),
        (grpc.StatusCode.PERMISSION_DENIED, UpstreamRejected, False),
        (grpc.StatusCode.INTERNAL, UpstreamError, False),
    ],
)
def test_grpc_status(code: grpc.StatusCode, kind: type[UpstreamError], transient: bool) -> None:
    error = rpc_error("g", grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "why"))
    assert type(error) is kind
    assert error.transient is transient
    assert "why" in error.message
