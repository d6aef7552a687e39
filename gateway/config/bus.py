"""The event bus and the triggers that consume it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from gateway.config.base import Duration, Name, Strict, check_unique
from gateway.config.workflows import TemplateValue
from gateway.protocols.subjects import check_subject

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
        check_unique(self.prefixes, "prefixe")
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
