"""Inbound authentication, authorization, rate limits and token budgets."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.config.base import Duration, Name, Strict
from gateway.config.bus import SubjectPattern


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
