"""A2A's own errors (spec §3.3.2), each with its JSON-RPC code; HTTP status and gRPC code
follow the spec's mapping table (§5.4) through the gateway's error classes."""

from __future__ import annotations

from typing import ClassVar

from gateway.model import GatewayError, InvalidRequest, NotFound, StatusCode


class A2AError(GatewayError):
    """An error A2A names; ``a2a_code`` is its JSON-RPC code."""

    a2a_code: ClassVar[int] = -32603


class TaskNotFound(A2AError, NotFound):
    a2a_code = -32001

    def __init__(self, task_id: str = "") -> None:
        # The same answer for a task that never existed, expired, or is someone else's. Worded as
        # the spec's examples are ("Task with ID '...' not found"), which clients match on.
        super().__init__(
            f"Task with ID {task_id[:80]!r} not found: it never existed, expired, or belongs to someone else"
        )


class TaskNotCancelable(A2AError):
    a2a_code = -32002
    code = StatusCode.FAILED_PRECONDITION
    http_status = 400


class PushNotificationNotSupported(A2AError):
    a2a_code = -32003
    code = StatusCode.FAILED_PRECONDITION
    http_status = 400


class UnsupportedOperation(A2AError):
    a2a_code = -32004
    code = StatusCode.FAILED_PRECONDITION
    http_status = 400


class ExtendedAgentCardNotConfigured(A2AError):
    a2a_code = -32007
    code = StatusCode.FAILED_PRECONDITION
    http_status = 400


class VersionNotSupported(A2AError):
    a2a_code = -32009
    code = StatusCode.FAILED_PRECONDITION
    http_status = 400


class InvalidParams(A2AError, InvalidRequest):
    a2a_code = -32602
