"""Shared gRPC mechanics for every gRPC-speaking adapter (the gateway's own proto, A2A over gRPC):
an upstream RPC's status as the model's error (transient or permanent), TLS channel credentials and
the options every upstream channel is opened with.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from gateway.model import (
    GatewayError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamTls,
    UpstreamUnavailable,
)

# gRPC core's own retries off: the retry policy is the gateway's one retry mechanism, and core's
# would keep each call's request in a retry buffer (about 6 KB more per open stream).
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (("grpc.enable_retries", 0),)

_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED}


def rpc_error(agent: str, error: grpc.aio.AioRpcError) -> GatewayError:
    """The model error for a failed upstream RPC."""
    code = error.code()
    message = f"agent answered gRPC {code.name}: {error.details() or ''}".rstrip(": ")
    details = {"upstream_status": code.name}
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UpstreamTimeout(message, agent=agent, details=details)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in (error.details() or ""):
        # A message over our own limit (grpc's words): the same again will not fit either.
        return UpstreamError(
            f"{message}: raise the agent's options.max_message_bytes to let it through", agent=agent, details=details
        )
    if code in _TRANSIENT:
        # grpc says so when no connection could be made: the request never left.
        never_sent = code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in (error.details() or "")
        return UpstreamUnavailable(message, agent=agent, details=details, reached=not never_sent)
    if code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.ALREADY_EXISTS,
    ):
        return UpstreamRejected(message, agent=agent, details=details)
    return UpstreamError(message, agent=agent, details=details)


def channel_credentials(tls: UpstreamTls | None) -> grpc.ChannelCredentials:
    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    if tls is None:
        return grpc.ssl_channel_credentials()
    return grpc.ssl_channel_credentials(read(tls.ca_file), read(tls.key_file), read(tls.cert_file))
