"""The typed configuration, validated by pydantic. YAML keys equal field names.

Every model forbids unknown keys, so a typo is an error at load instead of a
silently ignored setting. Durations accept ``"250ms"``, ``"5s"``, ``"2m"``,
``"1h"`` or a number of seconds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from gateway.patterns.template import check_template

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


class HttpListener(Strict):
    address: Address = "127.0.0.1:8080"
    # The largest request body accepted by the invoke endpoints (passthrough streams).
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)


class GrpcListener(Strict):
    address: Address = "127.0.0.1:50051"
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)


class Listeners(Strict):
    http: HttpListener | None = Field(default_factory=HttpListener)
    grpc: GrpcListener | None = Field(default_factory=GrpcListener)


class Agent(Strict):
    """An upstream agent: which adapter speaks to it, and where."""

    kind: str = Field(description="adapter kind: http, grpc, langgraph, crewai, mastra, a2a")
    endpoint: str
    description: str = ""
    # Adapter-specific options, validated by the adapter's own Options model.
    options: dict[str, Any] = Field(default_factory=dict)
    # Default time budget for calls to this agent when the caller sets none.
    timeout: Duration | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint_has_scheme_or_port(cls, value: str) -> str:
        if "://" not in value and ":" not in value:
            raise ValueError(f"expected a URL (http://host:port) or host:port, got {value!r}")
        return value


class Match(Strict):
    """Which invocations a route takes. All given conditions must hold."""

    agent: str
    # Exact header (HTTP) / metadata (gRPC) values; header names are case-insensitive.
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _lower_case(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.lower(): v for k, v in value.items()}


class WeightedTarget(Strict):
    agent: Name
    weight: int = Field(ge=0)


class Route(Strict):
    """Routes the invocations it matches to one agent or a weighted split."""

    name: Name | None = None
    match: Match
    target: Name | None = None
    split: list[WeightedTarget] | None = None
    timeout: Duration | None = None

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


class Compensation(Strict):
    """The saga action that undoes a completed step when a later step fails."""

    agent: Name
    # The document also holds `step`: the output of the step being undone.
    input: TemplateValue = "{{ step.text }}"


class Step(Strict):
    name: Name
    # An agent, a route or another workflow.
    agent: Name
    input: TemplateValue = "{{ input.text }}"
    # A failed optional step is recorded and the workflow continues degraded.
    optional: bool = False
    timeout: Duration | None = None
    compensate: Compensation | None = None


class SequentialWorkflow(Strict):
    kind: Literal["sequential"]
    description: str = ""
    steps: list[Step] = Field(min_length=1)
    # The workflow's answer; the last successful step's output when unset.
    output: TemplateValue = None

    @model_validator(mode="after")
    def _unique_steps(self) -> SequentialWorkflow:
        _check_unique([s.name for s in self.steps], "step")
        return self


class Branch(Strict):
    name: Name
    agent: Name
    input: TemplateValue = "{{ input.text }}"
    timeout: Duration | None = None


class ParallelWorkflow(Strict):
    kind: Literal["parallel"]
    description: str = ""
    branches: list[Branch] = Field(min_length=1)
    # all: every branch must answer; first: the first success wins; quorum: `quorum`
    # successes are enough; merge: JSON object outputs merged in branch order.
    aggregate: Literal["all", "first", "quorum", "merge"] = "all"
    quorum: int | None = Field(default=None, ge=1)

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


class HierarchicalWorkflow(Strict):
    """A manager agent plans; the gateway runs the delegations it asks for and
    feeds the results back, until the manager answers (bounded rounds and fan-out)."""

    kind: Literal["hierarchical"]
    description: str = ""
    manager: Name
    workers: list[Name] = Field(min_length=1)
    input: TemplateValue = "{{ input.text }}"
    max_rounds: int = Field(default=3, ge=1, le=20)
    max_fanout: int = Field(default=4, ge=1, le=64)
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
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    # JMESPath paths into the output's JSON that must be present and non-empty.
    fields: list[str] = Field(default_factory=list)
    pattern: str | None = None
    value: str | None = None
    ignore_case: bool = False
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    # python: "package.module:function"
    function: str | None = None
    # judge: the routed agent that gives the verdict, and what it should judge.
    agent: Name | None = None
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

    target: Name
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


class Tracing(Strict):
    # OTLP endpoint; when unset the standard OTEL_EXPORTER_OTLP_* variables apply.
    otlp_endpoint: str | None = None
    otlp_protocol: Literal["grpc", "http/protobuf"] = "grpc"
    service_name: str = "agent-gateway"
    # When False, spans are still created (ids propagate) but never exported.
    export: bool = True


class Telemetry(Strict):
    tracing: Tracing = Field(default_factory=Tracing)


class Server(Strict):
    # How long SIGTERM waits for in-flight requests before closing them.
    drain_timeout: Duration = 15.0
    # Calls through gateways (and workflow steps) nest at most this deep, so a
    # manager or a workflow cannot loop forever; counted in the baggage entry agw.hops.
    max_hops: int = Field(default=16, ge=1, le=256)


_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


def check_subject(value: str, *, pattern: bool) -> str:
    """A NATS-style subject: dot-separated tokens; patterns may use ``*`` (one token)
    and ``>`` (the rest, last token only)."""
    tokens = value.split(".")
    for index, token in enumerate(tokens):
        if pattern and (token == "*" or (token == ">" and index == len(tokens) - 1)):
            continue
        if not _SUBJECT_TOKEN.match(token):
            what = "subject pattern" if pattern else "subject"
            allowed = "; '*' matches one token and '>' the rest" if pattern else " (no wildcards when publishing)"
            raise ValueError(
                f"invalid {what} {value!r}: use dot-separated tokens of letters, digits, '_' and '-'{allowed}"
            )
    return value


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
    processed_max: int = Field(default=100_000, ge=1)
    # memory: events waiting per consumer group before publish fails (backpressure).
    max_pending: int = Field(default=10_000, ge=1)
    # nats: the server, stream names <stream_prefix>_<PREFIX>, the key-value bucket.
    url: str = "nats://127.0.0.1:4222"
    stream_prefix: Prefix = "AGW"
    # nats: how long a delivery may stay unacknowledged (while a handler runs the
    # gateway extends it) before the server redelivers it, e.g. after a crash.
    ack_wait: Duration = Field(default=30.0, gt=0)
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

    name: Name
    subject: SubjectPattern
    # An agent, a route or a workflow.
    agent: Name
    # The document holds `event`: subject, id, data (parsed JSON), text, attempt, headers.
    input: TemplateValue = "{{ event.data }}"
    # The consumer group (durable consumer with NATS); defaults to the trigger name.
    # Gateways sharing a group share the work; each group sees every event once.
    group: Name | None = None
    publish: Subject | None = None
    # The published payload; the document also holds `result`: text, data, agent.
    output: TemplateValue = "{{ result }}"
    timeout: Duration | None = None
    redelivery: Redelivery | None = None
    # Concurrent handlers of this trigger in this gateway.
    concurrency: int = Field(default=1, ge=1, le=256)


class GatewayConfig(Strict):
    """The root of a gateway YAML file."""

    listeners: Listeners = Field(default_factory=Listeners)
    agents: dict[Name, Agent] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    workflows: dict[Name, Workflow] = Field(default_factory=dict)
    checks: dict[Name, CheckConfig] = Field(default_factory=dict)
    evaluations: list[Evaluation] = Field(default_factory=list)
    telemetry: Telemetry = Field(default_factory=Telemetry)
    server: Server = Field(default_factory=Server)
    bus: Bus = Field(default_factory=Bus)
    triggers: list[Trigger] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_triggers(self) -> GatewayConfig:
        _check_unique([t.name for t in self.triggers], "trigger")
        return self
