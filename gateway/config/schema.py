"""The typed configuration, validated by pydantic. YAML keys equal field names.

Every model forbids unknown keys, so a typo is an error at load instead of a
silently ignored setting. Durations accept ``"250ms"``, ``"5s"``, ``"2m"``,
``"1h"`` or a number of seconds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from gateway.json_input import DEFAULT_MAX_DEPTH, MAX_DEPTH_LIMIT
from gateway.outbound import check_allowed_entry
from gateway.protocols.subjects import check_subject
from gateway.template import check_condition, check_template

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def parse_duration(value: Any) -> float:
    """Seconds from ``"250ms"``/``"5s"``/``"2m"``/``"1h"`` or a number."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '250ms', '5s' or '2m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"expected a duration such as '250ms', '5s' or '2m', got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=_NAME)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (for example 127.0.0.1:8080), got {value!r}")
    return value


Address = Annotated[str, BeforeValidator(lambda v: _check_address(str(v)))]


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


class Agent(Strict):
    """An upstream agent: which adapter speaks to it, and where."""

    kind: str = Field(description="adapter kind: http, grpc, langgraph, crewai, mastra, a2a, mcp (one MCP tool)")
    # Where the agent listens: a URL (http://host:port) or host:port for gRPC.
    endpoint: str
    # Shown by ListAgents and GET /v1/agents.
    description: str = ""
    # Adapter-specific options, validated by the adapter's own Options model.
    options: dict[str, Any] = Field(default_factory=dict)
    # Default time budget for calls to this agent when the caller sets none.
    timeout: Duration | None = None
    # TLS towards the agent; https:// and grpcs:// endpoints use the system CAs without it.
    tls: AgentTls | None = None
    # Named policies (top-level `policies`), merged in order; `default` applies when none is named.
    policies: list[Name] = Field(default_factory=list)
    # The GenAI provider behind the agent (`openai`, `anthropic`, `aws.bedrock`, ...), when known:
    # its spans carry it as gen_ai.provider.name.
    provider: str | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint_has_scheme_or_port(cls, value: str) -> str:
        if "://" not in value and ":" not in value:
            raise ValueError(f"expected a URL (http://host:port) or host:port, got {value!r}")
        return value


class TimeoutSpec(Strict):
    """Envoy's per_try_timeout and route timeout; Dapr's timeouts."""

    # Each attempt; for streams, the wait for the first event.
    per_try: Duration | None = None
    # The whole call, retries and backoff included (tightens the caller's deadline, never loosens it).
    overall: Duration | None = None


class Backoff(Strict):
    """Exponential backoff with full jitter: sleep uniform(0, min(max, base * multiplier**retry))."""

    # The first retry's delay ceiling.
    base: Duration = 0.1
    # No delay is longer than this.
    max: Duration = 5.0
    # Each retry multiplies the ceiling by this.
    multiplier: float = Field(default=2.0, ge=1.0)


class RetryBudget(Strict):
    """Retries may add at most ``ratio`` of the calls seen in ``window`` (plus a floor),
    so retries cannot multiply an outage (Envoy retry budgets, Linkerd)."""

    # The share of calls that may be retries.
    ratio: float = Field(default=0.2, gt=0, le=1)
    # Retries always allowed per second, however few calls there are.
    min_retries_per_second: float = Field(default=3.0, ge=0)
    # The time over which calls and retries are counted.
    window: Duration = 10.0


# What a retry may act on: "transient" (the adapters' classification) or status codes.
RetryCondition = Literal[
    "transient",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "UNKNOWN",
    "INTERNAL",
    "ABORTED",
    "FAILED_PRECONDITION",
]


def _transient() -> list[RetryCondition]:
    return ["transient"]


class RetrySpec(Strict):
    # Attempts in all, the first included.
    max_attempts: int = Field(default=3, ge=1, le=20)
    # The wait between attempts.
    backoff: Backoff = Field(default_factory=Backoff)
    # What may be retried: `transient` (the adapters' classification) and/or codes.
    retry_on: list[RetryCondition] = Field(default_factory=_transient)
    # Codes never retried even when retry_on would (e.g. DEADLINE_EXCEEDED for slow, costly agents).
    never_on: list[RetryCondition] = Field(default_factory=list)
    # Wait what an upstream's Retry-After asks (up to max_retry_after) instead of the backoff.
    honor_retry_after: bool = True
    # A Retry-After longer than this is not waited for: the call fails (or falls back) instead.
    max_retry_after: Duration = 30.0
    # The cap on retries across calls (null: none).
    budget: RetryBudget | None = Field(default_factory=RetryBudget)


class CircuitBreakerSpec(Strict):
    """pybreaker per upstream: opens on consecutive failures or on a failure rate."""

    # Open after this many failures in a row.
    consecutive_failures: int = Field(default=5, ge=1)
    # Open when at least this share of the calls in ``window`` failed (and there were minimum_calls).
    failure_rate: float | None = Field(default=None, gt=0, le=1)
    # failure_rate is judged only over at least this many calls.
    minimum_calls: int = Field(default=20, ge=1)
    # The time over which failure_rate is measured.
    window: Duration = 30.0
    # How long the breaker stays open before half-open trial calls.
    reset_timeout: Duration = 30.0
    # Half-open: this many trial calls at once.
    half_open_probes: int = Field(default=1, ge=1)
    # Half-open: this many successful trial calls close the breaker.
    success_threshold: int = Field(default=1, ge=1)
    # redis: the state lives in Redis, so every gateway sharing it trips together.
    storage: Literal["memory", "redis"] = "memory"
    # storage: redis: the server holding the shared state.
    redis_url: str = "redis://127.0.0.1:6379/0"
    # storage: redis: the key prefix, so deployments sharing a server stay apart.
    namespace: str = "agent-gateway"


class ConcurrencySpec(Strict):
    """A bulkhead: at most ``max_in_flight`` calls, ``max_queue`` more waiting up to ``queue_timeout``."""

    # Calls running at once.
    max_in_flight: int = Field(ge=1)
    # Calls waiting for a slot; more are refused at once (503).
    max_queue: int = Field(default=0, ge=0)
    # How long a call waits for a slot before it is refused (503).
    queue_timeout: Duration = 1.0


class StaticResponse(Strict):
    # The answer's text.
    text: str | None = None
    # The answer's structured data part (any JSON).
    data: Any = None

    @model_validator(mode="after")
    def _something(self) -> StaticResponse:
        if self.text is None and self.data is None:
            raise ValueError("a static response needs 'text' or 'data'")
        return self


class FallbackTarget(Strict):
    # An agent, route or workflow to call instead (or use `static`).
    agent: Name | None = None
    # A fixed answer (or use `agent`).
    static: StaticResponse | None = None

    @model_validator(mode="after")
    def _one(self) -> FallbackTarget:
        if (self.agent is None) == (self.static is None):
            raise ValueError("a fallback target needs exactly one of 'agent' or 'static'")
        return self


# Which failures lead to the fallbacks: anything transient (retries exhausted, breaker open,
# bulkhead full, timeouts) by default; "any" adds permanent upstream failures too.
FallbackCondition = Literal["transient", "any"]


class FallbackSpec(Strict):
    # Tried in order until one answers.
    targets: list[FallbackTarget] = Field(min_length=1)
    # ("when", not "on": YAML reads a bare `on` key as the boolean true.)
    when: FallbackCondition = "transient"


class PolicySpec(Strict):
    """A named bundle of resilience policies, applied to agents and routes by name.

    The chain always runs in one order: fallback > timeout.overall > retry >
    concurrency > circuit_breaker > timeout.per_try > the upstream call.
    """

    # Per-attempt and overall time budgets.
    timeout: TimeoutSpec | None = None
    # Retries of failed attempts.
    retry: RetrySpec | None = None
    # Fail fast while the upstream keeps failing.
    circuit_breaker: CircuitBreakerSpec | None = None
    # A bulkhead: calls at once and waiting.
    concurrency: ConcurrencySpec | None = None
    # Answers from elsewhere when the chain fails.
    fallback: FallbackSpec | None = None


class AgentTls(Strict):
    """TLS towards an agent: a CA bundle to verify it and a client certificate for mTLS."""

    # The CA bundle (PEM) the agent's certificate must chain to (system CAs when unset).
    ca_file: str | None = None
    # A client certificate chain (PEM) to present, for mTLS.
    cert_file: str | None = None
    # The private key of cert_file (PEM).
    key_file: str | None = None
    # The name the agent's certificate must carry (SNI too), when it differs from the endpoint's host.
    server_name: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> AgentTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both cert_file and key_file for a client certificate, or neither")
        return self


class ValueMatch(Strict):
    """One header, gRPC metadata entry or query parameter, by exactly one of exact value, prefix,
    regular expression (Python syntax, matched against the whole value) or presence."""

    # Header and metadata names are case-insensitive; query parameter names are not.
    name: str = Field(min_length=1)
    # The whole value.
    exact: str | None = None
    # The value starts with this.
    prefix: str | None = None
    # A Python regular expression the whole value matches.
    regex: str | None = None
    # true: the entry must be there (any value); false: it must be absent.
    present: bool | None = None
    # Holds when the test above does not (Envoy's invert_match).
    invert: bool = False

    @model_validator(mode="after")
    def _one_test(self) -> ValueMatch:
        given = [k for k in ("exact", "prefix", "regex", "present") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of exact, prefix, regex or present (got {given or 'none'})")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {self.regex!r}: {exc}") from None
        return self


def _headers_as_matches(value: Any) -> Any:
    # The short form `{name: value}` means exact values, as before.
    if isinstance(value, dict):
        return [{"name": k, "exact": v} for k, v in value.items()]
    return value


def _lower_names(value: list[ValueMatch]) -> list[ValueMatch]:
    return [m.model_copy(update={"name": m.name.lower()}) for m in value]


class Match(Strict):
    """Which calls a route takes. Every condition given must hold (see the README's "Routing")."""

    # The agent name callers ask for (it need not be a defined agent).
    agent: str
    # Header (HTTP) / metadata (gRPC) conditions: `{name: value}` for exact values, or a list of
    # `{name, exact | prefix | regex | present, invert}`.
    headers: Annotated[list[ValueMatch], BeforeValidator(_headers_as_matches), AfterValidator(_lower_names)] = Field(
        default_factory=list
    )
    # Query parameter conditions (HTTP calls only), in the same shapes as `headers`.
    query: Annotated[list[ValueMatch], BeforeValidator(_headers_as_matches)] = Field(default_factory=list)
    # Passthrough calls only (/v1/proxy/<agent>/...): the HTTP methods taken.
    methods: list[str] | None = None
    # Passthrough calls only: the path below /v1/proxy/<agent> must start with this.
    path_prefix: str | None = Field(default=None, pattern=r"^/")
    # Authenticated identity names (security.api_keys / jwt / mtls) taken.
    identities: list[str] | None = None
    # JWT claims: each must equal one of the values given (a list claim, such as groups, must hold one of them).
    claims: dict[str, str | list[str]] = Field(default_factory=dict)

    @field_validator("methods")
    @classmethod
    def _upper_case(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [m.upper() for m in value]


class WeightedTarget(Strict):
    """One destination of a weighted split."""

    # A defined agent.
    agent: Name
    # Relative share of the calls; 0 takes none.
    weight: int = Field(ge=0)


class Route(Strict):
    """Routes the invocations it matches to one agent or a weighted split."""

    # Shown in traces and errors.
    name: Name | None = None
    match: Match
    # The agent or workflow that takes every matched call (or use `split`).
    target: Name | None = None
    # Weighted destinations, for canaries (or use `target`).
    split: list[WeightedTarget] | None = None
    # The time budget for matched calls when the caller sets none.
    timeout: Duration | None = None
    # Named policies around the routed call (outside the target agent's own policies).
    policies: list[Name] = Field(default_factory=list)
    # Publish each successful answer as an event on this subject (under a bus prefix), so
    # event-driven flows can chain on the route's completion.
    publish: str | None = None
    # Set by the config that holds the route (its position names an unnamed one).
    _key: str = PrivateAttr(default="")

    @property
    def key(self) -> str:
        """The name traces, metrics and errors use for the route: its `name`, else `routes[<index>]`."""
        return self._key or self.name or "routes[?]"

    @model_validator(mode="after")
    def _one_destination(self) -> Route:
        if (self.target is None) == (self.split is None):
            raise ValueError("a route needs exactly one of 'target' or 'split'")
        if self.split is not None and sum(t.weight for t in self.split) <= 0:
            raise ValueError("a split needs at least one target with a positive weight")
        return self

    @property
    def targets(self) -> list[str]:
        if self.split is not None:
            return [t.agent for t in self.split]
        return [self.target] if self.target else []


TemplateValue = Annotated[Any, AfterValidator(check_template)]
Condition = Annotated[str, AfterValidator(check_condition)]


class Compensation(Strict):
    """The saga action that undoes a completed step when a later step fails."""

    # The agent, route or workflow that undoes the step.
    agent: Name
    # The document also holds `step`: the output of the step being undone.
    input: TemplateValue = "{{ step.text }}"
    # This undo's own time budget (the workflow's `compensation_timeout` when unset): it
    # starts when the compensation does, whatever is left of the workflow's deadline.
    timeout: Duration | None = Field(default=None, gt=0)


class WorkflowCommon(Strict):
    """What every workflow kind has."""

    # Shown by ListAgents, like an agent's.
    description: str = ""
    # A foreground call whose caller hangs up is cancelled with every call it started
    # (compensations still run); false lets it run on (the listener's setting then decides).
    cancel_on_disconnect: bool = True
    # What callers without a `workflow_steps` grant see of the steps in the answer's
    # metadata and in error details: none, status (names, agents, statuses, durations),
    # or outputs (every intermediate output as well).
    steps_in_answer: Literal["none", "status", "outputs"] = "none"
    # Named policies around the whole workflow, as on an agent: timeout (overall: the steps
    # see the tightened deadline), retry (the whole run again), circuit breaker, concurrency,
    # fallback; sync evaluations with `retryable: true` on the workflow sit inside them.
    policies: list[Name] = Field(default_factory=list)
    # The time budget of a call when the caller sets none (like an agent's `timeout`).
    timeout: Duration | None = Field(default=None, gt=0)
    # Journal each step's outcome in the runs store before the next starts, so a run whose
    # gateway dies or drains resumes (here after a restart, or at another gateway sharing the
    # store) from its last completed step; each step call carries `idempotency-key: <run>:<step>`.
    durable: bool = False


class WaitSpec(Strict):
    """A step that pauses the workflow until someone (or something) resumes it: an approval."""

    # What is being approved (a template like a step's input): its SHA-256 digest binds the
    # approval to this exact input of this exact pending step.
    input: TemplateValue = "{{ input }}"
    # An event on this subject resumes it too; its data is
    # {"run_id": ..., "digest": ..., "payload": ...} (publishers are authorized by `events` rules).
    subject: str | None = None
    # How long it waits; then the step fails DEADLINE_EXCEEDED (and the saga compensates).
    expires: Duration = Field(default=24 * 3600.0, gt=0)


class Step(Strict):
    """One step of a sequential workflow: an agent call, or a wait."""

    # Unique in the workflow; later templates refer to it as steps.NAME.
    name: Name
    # An agent, a route or another workflow (or use `wait`).
    agent: Name | None = None
    # Pause until resumed through POST /v1/workflow-runs/{run}/steps/{step}/resume by an
    # identity whose rule lists the workflow under `approvals`, or by an event on `wait.subject`;
    # steps.NAME.data is then {"payload": ..., "approver": ...}. Needs `durable: true`.
    wait: WaitSpec | None = None
    # What the step receives: a template over input and earlier steps' outputs.
    input: TemplateValue = "{{ input.text }}"
    # A failed optional step is recorded and the workflow continues degraded.
    optional: bool = False
    # Run the step only when this JMESPath expression over the workflow document (input,
    # earlier steps' outputs, context) is truthy, e.g. "steps.check.data.approved"; else
    # it is recorded as skipped and never called.
    when: Condition | None = None
    # This step's time budget (within the workflow's).
    timeout: Duration | None = None
    compensate: Compensation | None = None


class SequentialWorkflow(WorkflowCommon):
    """Steps run one after another, each seeing the outputs before it."""

    kind: Literal["sequential"]
    # Run in order; a failed required step stops the workflow and runs compensations.
    steps: list[Step] = Field(min_length=1)
    # The workflow's answer; the last successful step's output when unset.
    output: TemplateValue = None
    # The time budget of each compensation (undo), granted afresh after a deadline,
    # an error, a cancellation or a drain, so undoing never inherits an expired deadline.
    compensation_timeout: Duration = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _unique_steps(self) -> SequentialWorkflow:
        _check_unique([s.name for s in self.steps], "step")
        for step in self.steps:
            if (step.agent is None) == (step.wait is None):
                raise ValueError(f"step {step.name!r} needs exactly one of 'agent' or 'wait'")
            if step.wait is not None and not self.durable:
                raise ValueError(
                    f"step {step.name!r} waits: the workflow needs 'durable: true' to wait across restarts"
                )
        return self


class Branch(Strict):
    """One branch of a parallel workflow."""

    # Unique in the workflow.
    name: Name
    # An agent, a route or another workflow.
    agent: Name
    # What the branch receives: a template over the workflow's input.
    input: TemplateValue = "{{ input.text }}"
    # This branch's time budget (within the workflow's).
    timeout: Duration | None = None


class ParallelWorkflow(WorkflowCommon):
    """Branches run at once; `aggregate` decides the answer."""

    kind: Literal["parallel"]
    # Started together.
    branches: list[Branch] = Field(min_length=1)
    # all: every branch must answer; first: the first success wins; quorum: `quorum`
    # successes are enough; merge: JSON object outputs merged in branch order.
    aggregate: Literal["all", "first", "quorum", "merge"] = "all"
    # How many successes suffice (aggregate: quorum).
    quorum: int | None = Field(default=None, ge=1)
    # first: answer as soon as `quorum` branches succeeded (the rest are cancelled);
    # deadline: at least `quorum`, but keep waiting for late successes until every branch
    # finished or the call's deadline (or `timeout`) passed, and answer with all of them.
    quorum_wait: Literal["first", "deadline"] = "first"

    @model_validator(mode="after")
    def _check(self) -> ParallelWorkflow:
        _check_unique([b.name for b in self.branches], "branch")
        if self.quorum is not None and self.quorum > len(self.branches):
            raise ValueError(f"quorum {self.quorum} is more than the {len(self.branches)} branches")
        if self.aggregate == "quorum" and self.quorum is None:
            raise ValueError("aggregate: quorum needs 'quorum: N'")
        return self

    @property
    def needed(self) -> int:
        """How many successful branches decide the answer."""
        if self.aggregate == "first":
            return 1
        if self.quorum is not None:
            return self.quorum
        return len(self.branches)


class HierarchicalWorkflow(WorkflowCommon):
    """A manager agent plans; the gateway runs the delegations it asks for and
    feeds the results back, until the manager answers (bounded rounds and fan-out)."""

    kind: Literal["hierarchical"]
    # The agent that plans, delegates and answers.
    manager: Name
    # The agents, routes or workflows the manager may delegate to.
    workers: list[Name] = Field(min_length=1)
    # What the manager receives first.
    input: TemplateValue = "{{ input.text }}"
    # Manager turns before the workflow gives up.
    max_rounds: int = Field(default=3, ge=1, le=20)
    # Delegations run at once in one round.
    max_fanout: int = Field(default=4, ge=1, le=64)
    # The time budget of each delegation.
    worker_timeout: Duration | None = None


Workflow = Annotated[SequentialWorkflow | ParallelWorkflow | HierarchicalWorkflow, Field(discriminator="kind")]


def _check_unique(names: list[str], what: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"two {what}s are named {name!r}")
        seen.add(name)


CheckKind = Literal["json_schema", "required_fields", "regex", "contains", "not_contains", "length", "python", "judge"]
_CHECK_NEEDS: dict[str, tuple[str, ...]] = {
    "json_schema": ("schema_",),
    "required_fields": ("fields",),
    "regex": ("pattern",),
    "contains": ("value",),
    "not_contains": ("value",),
    "length": (),
    "python": ("function",),
    "judge": ("agent",),
}


class CheckConfig(Strict):
    """One named check on an output; which keys apply depends on ``kind``."""

    kind: CheckKind
    # json_schema: the JSON Schema the output must satisfy.
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    # JMESPath paths into the output's JSON that must be present and non-empty.
    fields: list[str] = Field(default_factory=list)
    # regex: a regular expression the output must match.
    pattern: str | None = None
    # contains / not_contains: the text to look for.
    value: str | None = None
    # regex, contains, not_contains: compare case-insensitively.
    ignore_case: bool = False
    # length: the fewest characters.
    min: int | None = Field(default=None, ge=0)
    # length: the most characters.
    max: int | None = Field(default=None, ge=0)
    # python: "package.module:function"
    function: str | None = None
    # judge: the routed agent that gives the verdict, and what it should judge.
    agent: Name | None = None
    # judge: what the judge is asked to assess.
    criteria: str = ""

    @model_validator(mode="after")
    def _needs(self) -> CheckConfig:
        missing = [key.rstrip("_") for key in _CHECK_NEEDS[self.kind] if not getattr(self, key)]
        if missing:
            raise ValueError(f"a {self.kind} check needs {', '.join(repr(m) for m in missing)}")
        if self.kind == "length" and self.min is None and self.max is None:
            raise ValueError("a length check needs 'min' or 'max'")
        return self


class Evaluation(Strict):
    """Checks applied to live calls of one agent, route or workflow."""

    # The agent, route or workflow whose calls are checked.
    target: Name
    # Names under `checks` applied to the final output.
    checks: list[Name] = Field(default_factory=list)
    # Checks on named step outputs of a workflow (session-level evaluation).
    steps: dict[str, list[Name]] = Field(default_factory=dict)
    # sync: a failed check fails the call (so retries and fallbacks act on it);
    # async: results are only recorded, never adding latency.
    mode: Literal["sync", "async"] = "async"
    # The fraction of calls evaluated.
    sample: float = Field(default=1.0, ge=0.0, le=1.0)
    # Whether the retry policy may repeat a call whose output failed a sync check.
    retryable: bool = False

    @model_validator(mode="after")
    def _some_check(self) -> Evaluation:
        if not self.checks and not self.steps:
            raise ValueError("an evaluation needs 'checks' or 'steps'")
        return self


class ApiKey(Strict):
    # The identity a caller with this key gets (authorization rules match it).
    identity: Name
    # Hex SHA-256 of the key (never the key itself); use ${ENV} substitution.
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class JwtAuth(Strict):
    # A JWKS file with the issuer's public keys (re-read when it changes).
    jwks_file: str | None = None
    # Or the issuer's JWKS URL (keys cached for five minutes).
    jwks_url: str | None = None
    # The `iss` every token must carry.
    issuer: str
    # The `aud` every token must carry.
    audience: str
    # Accepted signature algorithms (asymmetric only).
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    # The claim naming the caller (matched by authorization rules) and the user it acts for.
    identity_claim: str = "sub"
    # The claim naming the user the caller acts for (x-user-id upstream).
    user_claim: str = "sub"
    # Clock skew tolerated on exp, nbf and iat.
    leeway: Duration = 30.0

    @model_validator(mode="after")
    def _one_source(self) -> JwtAuth:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("give exactly one of 'jwks_file' or 'jwks_url'")
        if any(a.upper().startswith("HS") or a.lower() == "none" for a in self.algorithms):
            raise ValueError("only asymmetric algorithms are accepted (RS*, ES*, PS*, EdDSA)")
        return self


class MtlsAuth(Strict):
    # Which part of a verified client certificate names the caller.
    identity_from: Literal["subject_cn", "san_uri", "san_dns"] = "subject_cn"


class AuthzRule(Strict):
    """Who may call what: shell-style patterns (``billing-*``, ``*``)."""

    # Identities this rule is for (shell-style patterns).
    identities: list[str] = Field(min_length=1)
    # Agents, routes and workflows, by the name callers use.
    agents: list[str] = Field(default_factory=list)
    # State scopes the identities may name explicitly (see the state service).
    state_scopes: list[Literal["session", "thread", "user", "workflow"]] = Field(default_factory=list)
    # Event subjects the identities may publish on (POST /v1/events/{subject}, EventsService/PublishEvent):
    # bus subject patterns, ``*`` one token and a final ``>`` one or more (``events.alice.>``).
    events: list[SubjectPattern] = Field(default_factory=list)
    # MCP tools, prompts and resources the identities may use, as ``<virtual server>/<name>`` patterns
    # (``tools/*``, ``tools/weather_*``); a virtual server with no allowed name is hidden.
    mcp: list[str] = Field(default_factory=list)
    # Workflows (patterns) whose steps, with every intermediate output, these identities see
    # in answers and error details (others see what the workflow's `steps_in_answer` says).
    workflow_steps: list[str] = Field(default_factory=list)
    # Workflows (patterns) whose waiting steps these identities may resume (approve).
    approvals: list[str] = Field(default_factory=list)


class RateLimit(Strict):
    # Identities limited by this rule (shell-style patterns); each gets its own bucket.
    identities: list[str] = Field(default_factory=lambda: ["*"])
    # Tokens per second per identity, and the bucket size (bursts).
    rate: float = Field(gt=0)
    # The most calls at once after a quiet spell (the bucket size).
    burst: int = Field(ge=1)


class TokenBudget(Strict):
    """At most ``tokens`` model tokens per identity per ``window``, as the agents report their usage."""

    # Identities this budget is for (shell-style patterns); each gets its own budget.
    identities: list[str] = Field(default_factory=lambda: ["*"])
    # Input plus output tokens allowed in one window; a call past it is refused (429) until the window ends.
    tokens: int = Field(gt=0)
    # The window's length; it starts at an identity's first call.
    window: Duration = Field(default=3600.0, gt=0)


class Security(Strict):
    # Callers authenticating with `x-api-key` (or `Authorization: ApiKey ...`).
    api_keys: list[ApiKey] = Field(default_factory=list)
    # Callers authenticating with `Authorization: Bearer <JWT>`.
    jwt: JwtAuth | None = None
    # Callers authenticating with a client certificate.
    mtls: MtlsAuth = Field(default_factory=MtlsAuth)
    # Default deny: on an authenticating listener only what a rule allows passes.
    authorization: list[AuthzRule] = Field(default_factory=list)
    # Token buckets per identity, shared by both fronts; the first matching rule applies.
    rate_limits: list[RateLimit] = Field(default_factory=list)
    # Token budgets per identity, shared by both fronts; every matching budget applies.
    token_budgets: list[TokenBudget] = Field(default_factory=list)


class Tracing(Strict):
    """OpenTelemetry tracing: W3C context always propagates; spans export over OTLP."""

    # OTLP endpoint; when unset the standard OTEL_EXPORTER_OTLP_* variables apply.
    otlp_endpoint: str | None = None
    # The OTLP transport of the endpoint (4317 is usually grpc, 4318 http/protobuf).
    otlp_protocol: Literal["grpc", "http/protobuf"] = "grpc"
    # service.name of the gateway's spans.
    service_name: str = "agent-gateway"
    # When False, spans are still created (ids propagate) but never exported.
    export: bool = True


class LoggingConfig(Strict):
    """Logs: JSON lines (one access line per call, one failure record per failed call) or text."""

    # JSON lines or plain text.
    format: Literal["json", "text"] = "json"
    # The least severe level written.
    level: Literal["debug", "info", "warning", "error"] = "info"
    # The access log (logger agent_gateway.access, INFO): off to keep only failures.
    access_log: bool = True
    # How much of a call's input failure records carry: none, the first 200 characters, or all.
    payloads: Literal["none", "summary", "full"] = "summary"
    # Extra field names whose values are masked in every record (authorization, api keys,
    # tokens, passwords and secrets are always masked).
    redact: list[str] = Field(default_factory=list)


class Telemetry(Strict):
    """Traces (OTLP), logs; metrics are served on the admin listener."""

    tracing: Tracing = Field(default_factory=Tracing)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)


class Server(Strict):
    """Process-wide behaviour: shutdown and loop protection."""

    # On SIGTERM, how long calls in flight may still run; one still running then is answered
    # UNAVAILABLE (HTTP 503, an SSE error event, gRPC UNAVAILABLE), and the process exits.
    drain_timeout: Duration = 15.0
    # Calls through gateways (and workflow steps) nest at most this deep, so a
    # manager or a workflow cannot loop forever; counted in the baggage entry agw.hops.
    max_hops: int = Field(default=16, ge=1, le=256)
    # The calls one request tree may make in total (every routed call, workflow step and
    # delegation, at every depth), counted in the baggage entries agw.tree/agw.calls and
    # enforced by every gateway the tree passes: hops bound depth, this bounds breadth.
    max_calls: int = Field(default=1000, ge=1, le=1_000_000)
    # Re-read the config file this often and apply agents, routes, policies, workflows and
    # checks without a restart (null: only on POST /reload of the admin listener).
    config_watch: Duration | None = 5.0
    # Worker processes serving every listener (HTTP and gRPC), each on its own core; `--workers`
    # overrides it. Above 1, a supervising process holds the ports, restarts a worker that dies,
    # drains them all on SIGTERM and serves the admin listener with every worker's metrics and
    # health; the workers share only the state and bus backends (and breakers with storage: redis),
    # so the state needs a file or Redis and triggers need the nats bus. Linux only (SO_REUSEPORT).
    workers: int = Field(default=1, ge=1, le=64)
    # How many characters of an agent's own error reply (which may hold a stack trace) callers see,
    # in the error's `details.upstream_body`; 0: none. The failure log (agent_gateway.failures) has it.
    upstream_body_excerpt: int = Field(default=0, ge=0, le=4096)


StateScopeName = Literal["session", "thread", "user", "workflow"]


class SqliteState(Strict):
    # A file (created with its folders), or ":memory:" for a store that dies with the process.
    path: str = "./agent-gateway-state.db"


class RedisState(Strict):
    # The Redis server (redis://, rediss:// or unix://).
    url: str = "redis://127.0.0.1:6379/0"
    # Every key the gateway writes starts with this; give each deployment its own.
    key_prefix: str = Field(default="agw:state:", min_length=1)

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {value!r}")
        return value


class StateLimits(Strict):
    # The largest value one key may hold.
    max_value_bytes: int = Field(default=1024 * 1024, gt=0)
    # The most keys one scope (a session, a user...) may hold.
    max_keys_per_scope: int = Field(default=10_000, gt=0)


class StateTtl(Strict):
    """The default time to live of a key per scope when a write sets none (unset: forever)."""

    # Keys of session scopes.
    session: Duration | None = None
    # Keys of thread scopes.
    thread: Duration | None = None
    # Keys of user scopes.
    user: Duration | None = None
    # Keys of workflow scopes.
    workflow: Duration | None = None

    @model_validator(mode="after")
    def _positive(self) -> StateTtl:
        for scope in ("session", "thread", "user", "workflow"):
            if getattr(self, scope) == 0:
                raise ValueError(f"{scope}: a default ttl must be positive (leave it out for no expiry)")
        return self


class StateConfig(Strict):
    """The shared state service (``/v1/state`` and the StateService RPCs)."""

    # Where state lives: a SQLite file (one gateway) or Redis (a fleet).
    backend: Literal["sqlite", "redis"] = "sqlite"
    # backend: sqlite.
    sqlite: SqliteState = Field(default_factory=SqliteState)
    # backend: redis.
    redis: RedisState = Field(default_factory=RedisState)
    # Bounds on what callers may store.
    limits: StateLimits = Field(default_factory=StateLimits)
    # Default times to live per scope.
    ttl: StateTtl = Field(default_factory=StateTtl)
    # Scopes whose id a caller may name explicitly even when it is not its own
    # (for example `workflow`, for an orchestrator that reads a run it started).
    allow_explicit_scopes: list[StateScopeName] = Field(default_factory=list)


Subject = Annotated[str, AfterValidator(lambda v: check_subject(v, pattern=False))]
SubjectPattern = Annotated[str, AfterValidator(lambda v: check_subject(v, pattern=True))]
Prefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class Redelivery(Strict):
    """How failed event handlers are retried before their event is dead-lettered."""

    # Deliveries of one event to one consumer group, the first included.
    max_deliver: int = Field(default=5, ge=1, le=100)
    # Delay before each redelivery (the last value repeats).
    backoff: list[Duration] = Field(default_factory=lambda: [0.5, 2.0, 10.0], min_length=1)


class Bus(Strict):
    """The event bus: in-process (``memory``, the default) or NATS JetStream."""

    # In-process (one gateway) or NATS JetStream (a fleet, durable).
    backend: Literal["memory", "nats"] = "memory"
    # Subjects must start with one of these tokens; with NATS each gets a stream.
    prefixes: list[Prefix] = Field(default_factory=lambda: ["events"], min_length=1)
    # Dead letters go to <dead_letter_prefix>.<original subject>.
    dead_letter_prefix: Prefix = "deadletter"
    redelivery: Redelivery = Field(default_factory=Redelivery)
    # Publishes with the same event id within this window are delivered once.
    duplicate_window: Duration = 120.0
    # How many handled event ids are remembered so a redelivered event that was
    # already handled does not run its agent again (memory: in-process, bounded;
    # nats: a key-value bucket with this time to live).
    processed_ttl: Duration = 3600.0
    # memory: the most handled event ids remembered.
    processed_max: int = Field(default=100_000, ge=1)
    # memory: events waiting per consumer group before publish fails (backpressure).
    max_pending: int = Field(default=10_000, ge=1)
    # nats: the server, stream names <stream_prefix>_<PREFIX>, the key-value bucket.
    url: str = "nats://127.0.0.1:4222"
    # nats: stream names are <stream_prefix>_<PREFIX>.
    stream_prefix: Prefix = "AGW"
    # nats: how long a delivery may stay unacknowledged (while a handler runs the
    # gateway extends it) before the server redelivers it, e.g. after a crash.
    ack_wait: Duration = Field(default=30.0, gt=0)
    # nats: how long to wait for the server at start.
    connect_timeout: Duration = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _dead_letters_apart(self) -> Bus:
        if self.dead_letter_prefix in self.prefixes:
            raise ValueError(
                f"dead_letter_prefix {self.dead_letter_prefix!r} must differ from the event prefixes, "
                "or triggers would consume their own dead letters"
            )
        _check_unique(self.prefixes, "prefixe")
        return self


class Trigger(Strict):
    """On an event matching ``subject``, invoke ``agent`` with input built from the event;
    optionally publish the result as a new event (so agents chain through events)."""

    # Shown in logs, metrics and traces; the default consumer group.
    name: Name
    # The events it takes: `*` matches one token, `>` the rest.
    subject: SubjectPattern
    # An agent, a route or a workflow.
    agent: Name
    # The document holds `event`: subject, id, data (parsed JSON), text, attempt, headers.
    input: TemplateValue = "{{ event.data }}"
    # The consumer group (durable consumer with NATS); defaults to the trigger name.
    # Gateways sharing a group share the work; each group sees every event once.
    group: Name | None = None
    # Publish the result on this subject (so agents chain through events).
    publish: Subject | None = None
    # The published payload; the document also holds `result`: text, data, agent.
    output: TemplateValue = "{{ result }}"
    # The time budget of each handled event's call.
    timeout: Duration | None = None
    redelivery: Redelivery | None = None
    # Concurrent handlers of this trigger in this gateway.
    concurrency: int = Field(default=1, ge=1, le=256)


class Webhooks(Strict):
    """Completion callbacks of background runs: a signed POST to the run's webhook URL."""

    # Where a run's webhook may point (for example https://hooks.example.com/agw/): a webhook URL must have
    # an entry's scheme, host and port exactly (no port: the scheme's default) and a path under the entry's;
    # user-info and the gateway's own listeners are always refused. Empty: webhooks are refused.
    allowed_prefixes: list[str] = Field(default_factory=list)
    # The HMAC-SHA256 key of the x-agw-signature header; use ${ENV} substitution.
    secret: str = ""
    # Deliveries of one callback, the first included; retried on connection errors, 429 and 5xx.
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff: Backoff = Field(default_factory=lambda: Backoff(base=0.5, max=30.0))
    # Each attempt's time budget.
    timeout: Duration = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _secret(self) -> Webhooks:
        if self.allowed_prefixes and not self.secret:
            raise ValueError("webhooks need a 'secret' to sign their payloads")
        for prefix in self.allowed_prefixes:
            check_allowed_entry(prefix, "runs.webhooks.allowed_prefixes")
        return self


class RunsConfig(Strict):
    """Background runs (``/v1/runs``, RunService): kept in the ``state`` backend (SQLite file or Redis)."""

    # Redis: every key of a run starts with this (the SQLite backend uses the state file).
    key_prefix: str = Field(default="agw:runs:", min_length=1)
    # How long a finished run (and its events) is kept.
    retention: Duration = Field(default=24 * 3600.0, gt=0)
    # Events kept per run for replay; later events still stream live but cannot be replayed.
    max_events: int = Field(default=100_000, ge=1)
    # How often a gateway looks for cancels asked at another gateway and follows runs it does not run.
    poll_interval: Duration = Field(default=0.5, gt=0)
    # A gateway refreshes its running runs' records this often (a third of it); a run not refreshed
    # for this long is reported failed (UNAVAILABLE): the gateway running it died.
    lease: Duration = Field(default=30.0, gt=0)
    # On completion, publish an event on <completion_subject>.<status> (succeeded, failed, cancelled).
    completion_subject: Subject | None = None
    webhooks: Webhooks = Field(default_factory=Webhooks)


McpRevision = Literal["2026-07-28", "2025-11-25"]
_MCP_REVISIONS: tuple[McpRevision, ...] = ("2026-07-28", "2025-11-25")


class McpUpstream(Strict):
    """A tool server the gateway federates: a Streamable HTTP endpoint (``url``) or a
    stdio server it launches and supervises (``command``)."""

    # The upstream's MCP endpoint (http://host:port/mcp).
    url: str | None = None
    # Or a stdio server the gateway launches: the program (`python`: the gateway's own interpreter).
    command: str | None = None
    # stdio: the program's arguments.
    args: list[str] = Field(default_factory=list)
    # stdio: environment variables added to the gateway's own for the program.
    env: dict[str, str] = Field(default_factory=dict)
    # Credentials the gateway sends to this upstream (for example authorization: Bearer ${TOKEN});
    # a client's own token never goes upstream.
    headers: dict[str, str] = Field(default_factory=dict)
    # Named policies (top-level `policies`), merged in order; `default` applies when none is named.
    policies: list[Name] = Field(default_factory=list)
    # The MCP revision spoken to it; unset: 2026-07-28 when `server/discover` says the upstream speaks it,
    # else the 2025-11-25 handshake.
    protocol_version: McpRevision | None = None
    # The MCP revisions clients may reach this upstream under; a virtual server offers only the ones all
    # its upstreams share. Default: both, the gateway bridging them (it holds a 2025-11-25 upstream's
    # session itself, and drives a 2026-07-28 upstream's input requests for a 2025-11-25 client).
    versions: list[McpRevision] = Field(default_factory=lambda: list(_MCP_REVISIONS), min_length=1)
    # Tools retried on failure even without a readOnlyHint/idempotentHint annotation.
    idempotent_tools: list[str] = Field(default_factory=list)
    # Default time budget of one call when the caller sets none.
    timeout: Duration | None = None
    # stdio: restarts in a row after crashes before the upstream is given up.
    max_restarts: int = Field(default=5, ge=0)
    # stdio: the wait before a restart (doubling with each crash in a row, up to 30s).
    restart_backoff: Duration = Field(default=0.5, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpUpstream:
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of 'url' (Streamable HTTP) or 'command' (stdio)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"an MCP upstream url must be http(s)://, got {self.url!r}")
        if self.command is None and (self.args or self.env):
            raise ValueError("'args' and 'env' are for stdio upstreams (with 'command')")
        return self


class McpMember(Strict):
    """One upstream in a virtual server: its names get ``<prefix>_`` in front."""

    # The upstream (a name under `mcp.upstreams`).
    upstream: Name
    # Defaults to the upstream's name; empty: names pass unchanged.
    prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{0,64}$")
    # Tool, prompt and resource names (upstream names, shell-style) exposed; empty: all.
    allow: list[str] = Field(default_factory=list)
    # Names hidden even when allowed.
    deny: list[str] = Field(default_factory=list)

    @property
    def name_prefix(self) -> str:
        prefix = self.upstream if self.prefix is None else self.prefix
        return f"{prefix}_" if prefix else ""


class McpVirtualServer(Strict):
    """An MCP server the gateway serves at ``/mcp/<name>``, merging upstreams."""

    upstreams: list[McpMember] = Field(min_length=1)
    # Shown to clients (initialize / server/discover).
    instructions: str = ""
    # Routed agents (or workflows) exposed as tools of this server: input the message, output the answer.
    agents: list[Name] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct_prefixes(self) -> McpVirtualServer:
        prefixes = [m.name_prefix for m in self.upstreams]
        for prefix in prefixes:
            if prefixes.count(prefix) > 1:
                raise ValueError(f"two upstreams share the prefix {prefix!r}: give each a distinct 'prefix'")
        return self


class McpStreams(Strict):
    """The SSE streams of 2025-11-25 sessions (a POST's answer, the GET stream), resumable with
    ``Last-Event-ID``: every event has an id, and a stream opens with a priming event."""

    # The reconnect delay the priming event's `retry` field asks of clients.
    retry: Duration = Field(default=1.0, gt=0)
    # Close a stream's connection after this long so the client polls (reconnects with Last-Event-ID)
    # instead of holding a connection open; unset: held until the answer.
    hold: Duration | None = Field(default=None, gt=0)
    # A stream no client follows is kept this long for a reconnect; then its call is cancelled upstream.
    resume_window: Duration = Field(default=30.0, gt=0)
    # The last events of one stream kept for a replay (the newest always, whatever its size).
    replay_events: int = Field(default=256, ge=1)
    # And at most this many bytes of them.
    replay_bytes: int = Field(default=1 << 20, ge=1)


class McpConfig(Strict):
    """The MCP gateway: upstream tool servers and the virtual servers clients connect to."""

    upstreams: dict[Name, McpUpstream] = Field(default_factory=dict)
    virtual_servers: dict[Name, McpVirtualServer] = Field(default_factory=dict)
    # The authorization server(s) named in the OAuth protected-resource metadata (RFC 9728).
    authorization_servers: list[str] = Field(default_factory=list)
    streams: McpStreams = Field(default_factory=McpStreams)


class A2AConfig(Strict):
    """The A2A front (``/a2a/{agent}``) and discovery (``/.well-known/agent-card.json``, ``/a2a``)."""

    # The agent the origin's agent card describes (an agent or a route's agent name);
    # without one the card describes the gateway and lists its agents as skills.
    default_agent: Name | None = None


class GatewayConfig(Strict):
    """The root of a gateway YAML file."""

    @model_validator(mode="after")
    def _auth_methods_configured(self) -> GatewayConfig:
        for name, listener in (("http", self.listeners.http), ("grpc", self.listeners.grpc)):
            if listener is None:
                continue
            if "jwt" in listener.auth and self.security.jwt is None:
                raise ValueError(f"listeners.{name}.auth has jwt but security.jwt is not configured")
            if "api_key" in listener.auth and not self.security.api_keys:
                raise ValueError(f"listeners.{name}.auth has api_key but security.api_keys is empty")
            if "mtls" in listener.auth and (listener.tls is None or listener.tls.client_cert == "none"):
                raise ValueError(f"listeners.{name}.auth has mtls but its tls does not ask for client certificates")
        return self

    listeners: Listeners = Field(default_factory=Listeners)
    # Health, metrics, breakers, reload; null disables it.
    admin: AdminListener | None = Field(default_factory=AdminListener)
    policies: dict[Name, PolicySpec] = Field(default_factory=dict)
    agents: dict[Name, Agent] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    # Named workflows (sequential, parallel, hierarchical), callable like agents.
    workflows: dict[Name, Workflow] = Field(default_factory=dict)
    checks: dict[Name, CheckConfig] = Field(default_factory=dict)
    evaluations: list[Evaluation] = Field(default_factory=list)
    # Inbound authentication, authorization and rate limits.
    security: Security = Field(default_factory=Security)
    telemetry: Telemetry = Field(default_factory=Telemetry)
    server: Server = Field(default_factory=Server)
    # null disables the state service.
    state: StateConfig | None = Field(default_factory=StateConfig)

    bus: Bus = Field(default_factory=Bus)
    triggers: list[Trigger] = Field(default_factory=list)
    # Background runs; they need the state service (``state`` not null).
    runs: RunsConfig = Field(default_factory=RunsConfig)
    # The MCP gateway (tool servers federated behind /mcp/<virtual server>).
    mcp: McpConfig = Field(default_factory=McpConfig)
    a2a: A2AConfig = Field(default_factory=A2AConfig)

    @model_validator(mode="after")
    def _key_routes(self) -> GatewayConfig:
        for index, route in enumerate(self.routes):
            route._key = route.name or f"routes[{index}]"
        return self

    @model_validator(mode="after")
    def _a2a_default_agent_exists(self) -> GatewayConfig:
        name = self.a2a.default_agent
        if name is not None and name not in self.agents and not any(r.match.agent == name for r in self.routes):
            raise ValueError(f"a2a.default_agent {name!r} is neither an agent nor a route's agent name")
        return self

    @model_validator(mode="after")
    def _completion_subject_on_bus(self) -> GatewayConfig:
        subject = self.runs.completion_subject
        if subject is not None and subject.split(".")[0] not in self.bus.prefixes:
            raise ValueError(
                f"runs.completion_subject {subject!r} must start with one of the bus prefixes {self.bus.prefixes}"
            )
        return self

    @model_validator(mode="after")
    def _unique_triggers(self) -> GatewayConfig:
        _check_unique([t.name for t in self.triggers], "trigger")
        return self
