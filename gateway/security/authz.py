"""Authorization: which identities may call which agents (and name which state scopes).

Rules are allow-lists; with authentication on, anything no rule allows is
denied. Identities and agents match shell-style patterns; event grants match
with the bus's own subject semantics (``*`` exactly one token, a final ``>``
one or more), the one matcher the bus routes with, so a grant allows exactly
the subjects a subscription with the same pattern would receive.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from gateway.config.schema import AuthzRule
from gateway.model import PermissionDenied
from gateway.protocols.subjects import subject_matches
from gateway.security.identity import Identity

DENIED = "not allowed"


class Authorizer:
    def __init__(self, rules: Sequence[AuthzRule]) -> None:
        self.rules = list(rules)

    def rules_for(self, identity: Identity) -> list[AuthzRule]:
        return [r for r in self.rules if any(fnmatchcase(identity.name, p) for p in r.identities)]

    def may_call(self, identity: Identity, target: str) -> bool:
        return any(fnmatchcase(target, p) for rule in self.rules_for(identity) for p in rule.agents)

    def may_use_mcp(self, identity: Identity, server: str, name: str) -> bool:
        """Whether a rule grants ``<server>/<name>`` (a tool, prompt or resource of a virtual server)."""
        target = f"{server}/{name}"
        return any(fnmatchcase(target, p) for rule in self.rules_for(identity) for p in rule.mcp)

    def may_reach_mcp(self, identity: Identity, server: str) -> bool:
        """Whether any grant names something of virtual server ``server`` (else it stays hidden)."""
        return any(fnmatchcase(server, p.split("/", 1)[0]) for rule in self.rules_for(identity) for p in rule.mcp)

    def sees_steps(self, identity: Identity, workflow: str) -> bool:
        return any(fnmatchcase(workflow, p) for rule in self.rules_for(identity) for p in rule.workflow_steps)

    def may_approve(self, identity: Identity, workflow: str) -> bool:
        return any(fnmatchcase(workflow, p) for rule in self.rules_for(identity) for p in rule.approvals)

    def check_publish(self, identity: Identity, subject: str) -> None:
        if not any(subject_matches(p, subject) for rule in self.rules_for(identity) for p in rule.events):
            raise PermissionDenied(f"{DENIED}: {identity.name} may not publish on {subject}")

    def check_call(self, identity: Identity, target: str) -> None:
        if not self.may_call(identity, target):
            raise PermissionDenied(f"{DENIED}: {identity.name} may not call {target}", agent=target)
