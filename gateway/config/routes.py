"""Upstream agents and the routes that take calls to them."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PrivateAttr, field_validator, model_validator

from gateway.config.base import Duration, Name, Strict


class Agent(Strict):
    """An upstream agent: which adapter speaks to it, and where."""

    kind: str = Field(
        description="adapter kind: a built-in one (`BUILTIN` in gateway/adapters/registry.py, for example "
        "http, grpc, langgraph, a2a) or a third-party adapter's `agent_gateway.adapters` entry point; "
        "an unknown kind is an error that names the known ones"
    )
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
