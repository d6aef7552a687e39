"""Background runs and their completion webhooks."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway.config.base import Duration, Strict
from gateway.config.bus import Subject
from gateway.config.policies import Backoff
from gateway.outbound import check_allowed_entry


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
