"""The fronts' listeners (HTTP, gRPC, admin), their TLS and CORS."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.config.base import Address, Duration, Strict
from gateway.json_input import DEFAULT_MAX_DEPTH, MAX_DEPTH_LIMIT


class ServerTls(Strict):
    """TLS for a listener; files are re-read when they change (no restart)."""

    # The listener's certificate chain (PEM).
    cert_file: str
    # The private key of cert_file (PEM).
    key_file: str
    # CA bundle for client certificates (mTLS).
    client_ca_file: str | None = None
    # Whether callers must present a client certificate signed by client_ca_file.
    client_cert: Literal["none", "optional", "require"] = "none"

    @model_validator(mode="after")
    def _ca_for_clients(self) -> ServerTls:
        if self.client_cert != "none" and not self.client_ca_file:
            raise ValueError("client_cert needs client_ca_file (the CA that signs client certificates)")
        return self


AuthMethod = Literal["api_key", "jwt", "mtls"]


class ListenerCommon(Strict):
    # Accepted ways to authenticate; empty means no authentication on this listener.
    auth: list[AuthMethod] = Field(default_factory=list)
    # Whether identity headers (x-user-id, ...) from callers are believed. Defaults to
    # true only without authentication (the local agent's loopback listener).
    trusted: bool | None = None
    tls: ServerTls | None = None
    # Streams: give up when no event came for this long (off when unset).
    stream_idle_timeout: Duration | None = None
    # Streams: give up after this long in all (off when unset).
    stream_max_duration: Duration | None = None
    # Cancel a foreground call upstream (LangGraph run cancel, A2A task cancel, closing the
    # stream) when its caller goes away; off: the call runs to its end and its answer is dropped.
    cancel_on_disconnect: bool = False
    # JSON a caller sends (HTTP bodies, the A2A front, the state service's `json` field)
    # may nest arrays and objects this deep; deeper is refused with 400 / INVALID_ARGUMENT
    # before it is parsed.
    max_json_depth: int = Field(default=DEFAULT_MAX_DEPTH, ge=4, le=MAX_DEPTH_LIMIT)

    @property
    def trusts_identity_headers(self) -> bool:
        return self.trusted if self.trusted is not None else not self.auth


class Cors(Strict):
    """Which browser origins may call the HTTP front, with which methods and headers (the Fetch standard's CORS)."""

    # Origins exactly as browsers send them (`https://app.example.com`, no path); "*" allows any origin.
    allow_origins: list[str] = Field(min_length=1)
    # Methods a cross-origin call may use.
    allow_methods: list[str] = Field(default_factory=lambda: ["GET", "POST", "DELETE"])
    # Request headers a cross-origin call may send (matched case-insensitively).
    allow_headers: list[str] = Field(
        default_factory=lambda: [
            "content-type",
            "authorization",
            "x-api-key",
            "traceparent",
            "tracestate",
            "baggage",
            "x-request-id",
            "x-session-id",
            "x-thread-id",
            "x-timeout-ms",
            "last-event-id",
        ]
    )
    # Response headers page scripts may read.
    expose_headers: list[str] = Field(
        default_factory=lambda: ["x-request-id", "x-agw-attempts", "x-agw-fallback", "retry-after"]
    )
    # Let pages send cookies or HTTP authentication (never together with the "*" origin).
    allow_credentials: bool = False
    # How long browsers may cache a preflight's answer.
    max_age: Duration = 600.0

    @model_validator(mode="after")
    def _credentials_need_named_origins(self) -> Cors:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError("allow_credentials needs named origins: browsers refuse credentials with origin '*'")
        for origin in self.allow_origins:
            if origin != "*" and (origin.rstrip("/") != origin or origin.count("/") != 2 or "://" not in origin):
                raise ValueError(f"an origin is scheme://host[:port] with no path, got {origin!r}")
        return self


class HttpListener(ListenerCommon):
    """The HTTP front: JSON invoke, server-sent events, passthrough."""

    # Where it listens; use 0.0.0.0:PORT in a container so probes and peers reach it.
    address: Address = "127.0.0.1:8080"
    # The largest request body accepted by the invoke endpoints (passthrough streams).
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # The largest header line or header field a caller may send.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    # An SSE comment (`: keep-alive`) after this long without an event, so proxies keep idle streams open.
    sse_keepalive: Duration | None = Field(default=15.0, gt=0)
    # A request's line and headers must arrive within this long of its first byte (of the
    # connection, for the first request); slower clients (slowloris) get 408 and are closed.
    header_timeout: Duration = Field(default=10.0, gt=0)
    # A kept-alive connection with no request for this long is closed (longer than the idle
    # timeout of a load balancer in front, which then closes first and never races a close).
    idle_timeout: Duration = Field(default=75.0, gt=0)
    # Open connections at most; one more is answered 503 and closed, the others are served on.
    max_connections: int = Field(default=4096, ge=1)
    # Cross-origin calls from browser pages (preflights answered here); off when unset.
    cors: Cors | None = None


class GrpcListener(ListenerCommon):
    """The gRPC front (our proto, health checking, reflection)."""

    # Where it listens; use 0.0.0.0:PORT in a container so probes and peers reach it.
    address: Address = "127.0.0.1:50051"
    # The largest request or response message.
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # The largest metadata (headers) of a call; larger calls are refused.
    max_metadata_bytes: int = Field(default=16 * 1024, ge=1024)
    # HTTP/2 keepalive pings on each connection this often (null: none), so idle long streams survive.
    keepalive_time: Duration | None = Field(default=30.0, gt=0)
    # How long a ping may go unanswered before the connection is closed.
    keepalive_timeout: Duration = Field(default=20.0, gt=0)
    # The most often a client may ping; more frequent pings are answered with GOAWAY.
    keepalive_min_client_interval: Duration = Field(default=10.0, gt=0)
    # A new connection must finish its TLS and HTTP/2 handshake within this long (the
    # header-read timeout of gRPC), or it is closed.
    handshake_timeout: Duration = Field(default=10.0, gt=0)
    # A connection without a call for this long is sent GOAWAY (clients reconnect on their next call).
    max_connection_idle: Duration | None = Field(default=3600.0, gt=0)
    # Connections older than this are sent GOAWAY (null: no limit), spreading long-lived
    # clients over new replicas.
    max_connection_age: Duration | None = Field(default=None, gt=0)
    # How long the calls still running on a connection sent away for its age may go on.
    max_connection_age_grace: Duration = Field(default=60.0, gt=0)
    # Open connections at most; more are refused.
    max_connections: int = Field(default=4096, ge=1)
    # Let several processes listen on this port (SO_REUSEPORT). Off: a second gateway on a
    # port in use fails at start instead of silently taking half of the calls. The workers of
    # server.workers always share their port this way (the supervisor checks it is free first).
    so_reuseport: bool = False


class AdminListener(Strict):
    """Health, metrics, breakers and reload, on their own port (keep it off the public network)."""

    # Where the admin API listens (probes, metrics, breakers, reload); keep it private.
    address: Address = "127.0.0.1:9901"
    # Readiness fails while the breaker of any of these agents is open (empty: listeners up is ready).
    ready_requires: list[str] = Field(default_factory=list)
    # When set (use ${ENV}), everything but /livez, /readyz and /metrics needs
    # `Authorization: Bearer <token>`: config, breakers and reload are not for every pod nearby.
    token: str | None = Field(default=None, min_length=16)


class Listeners(Strict):
    """The fronts the gateway serves; set one to null to disable it."""

    http: HttpListener | None = Field(default_factory=HttpListener)
    grpc: GrpcListener | None = Field(default_factory=GrpcListener)
