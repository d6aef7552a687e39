"""Workflows: sequential, parallel and hierarchical compositions of agents."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from gateway.config.base import Duration, Name, Strict, check_unique
from gateway.template import check_condition, check_template

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
        check_unique([s.name for s in self.steps], "step")
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
        check_unique([b.name for b in self.branches], "branch")
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
