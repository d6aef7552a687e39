"""The per-listener gate every inbound call passes: authenticate, rate-limit,
authorize the target, and settle which identity headers are believed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.config.schema import ListenerCommon, Security
from gateway.model import PermissionDenied, Unauthenticated
from gateway.propagation import SESSION_ID, THREAD_ID, USER_ID
from gateway.security.authn import (
    REJECTED,
    ApiKeyAuthenticator,
    Authenticator,
    MtlsAuthenticator,
)
from gateway.security.authz import Authorizer
from gateway.security.budgets import TokenBudgets
from gateway.security.identity import ANONYMOUS, Credentials, Identity
from gateway.security.ratelimit import RateLimiter

# Headers that claim who the caller is or acts for; an untrusted caller cannot set them.
IDENTITY_HEADERS = (USER_ID,)
# Credentials meant for the gateway; never forwarded to agents.
CREDENTIAL_HEADERS = ("authorization", "x-api-key")
# Conversation handles: callers choose them, but never another user's (see the state service).
CONVERSATION_HEADERS = (SESSION_ID, THREAD_ID)


class ListenerGuard:
    def __init__(
        self, listener: ListenerCommon, security: Security, limiter: RateLimiter, budgets: TokenBudgets | None = None
    ) -> None:
        self.enabled = bool(listener.auth)
        self.trusted = listener.trusts_identity_headers
        available: dict[str, Authenticator] = {
            "api_key": ApiKeyAuthenticator(security.api_keys),
            "mtls": MtlsAuthenticator(security.mtls),
        }
        if security.jwt is not None:
            # Here, not at the top: PyJWT and cryptography load only when JWT auth is configured.
            from gateway.security.jwt_auth import JwtAuthenticator

            available["jwt"] = JwtAuthenticator(security.jwt)
        self.authenticators: Sequence[Authenticator] = [available[m] for m in listener.auth]
        self.authorizer = Authorizer(security.authorization)
        self.limiter = limiter
        self.budgets = budgets if budgets is not None else TokenBudgets([])

    def authenticate(self, credentials: Credentials) -> Identity:
        """The caller's identity; raises Unauthenticated (401) when it proves none."""
        if not self.enabled:
            identity = ANONYMOUS
        else:
            found = None
            for authenticator in self.authenticators:
                if (found := authenticator.authenticate(credentials)) is not None:
                    break
            if found is None:
                raise Unauthenticated(REJECTED)
            identity = found
        self.limiter.check(identity.name if identity is not ANONYMOUS else f"anonymous@{credentials.peer_address}")
        self.budgets.check(identity.name)
        return identity

    @property
    def dropped_headers(self) -> tuple[str, ...]:
        """Inbound headers that must not reach the agent as the caller sent them."""
        return (IDENTITY_HEADERS if not self.trusted else ()) + (CREDENTIAL_HEADERS if self.enabled else ())

    def headers_for(self, headers: Mapping[str, str], identity: Identity) -> dict[str, str]:
        """Inbound headers as the gateway will believe them."""
        if self.enabled:
            headers = {k: v for k, v in headers.items() if k not in CREDENTIAL_HEADERS}
        if self.trusted:
            return dict(headers)
        kept = {k: v for k, v in headers.items() if k not in IDENTITY_HEADERS}
        if identity.user_id:
            kept[USER_ID] = identity.user_id
        return kept

    def may_use_mcp(self, identity: Identity, server: str, name: str | None = None) -> bool:
        """MCP grants (default deny with authentication on): a name of ``server``, or the server at all."""
        if not self.enabled:
            return True
        if name is None:
            return self.authorizer.may_reach_mcp(identity, server)
        return self.authorizer.may_use_mcp(identity, server, name)

    def authorize(self, identity: Identity, target: str) -> None:
        """Raises PermissionDenied (403) unless a rule lets this identity call ``target``."""
        if self.enabled:
            self.authorizer.check_call(identity, target)

    def authorize_publish(self, identity: Identity, subject: str) -> None:
        """Raises PermissionDenied (403) unless a rule lets this identity publish on ``subject``."""
        if self.enabled:
            self.authorizer.check_publish(identity, subject)

    def granted_scopes(self, identity: Identity) -> frozenset[str]:
        """State scopes this identity may name explicitly (none without authentication)."""
        if not self.enabled:
            return frozenset()
        return frozenset(s for rule in self.authorizer.rules_for(identity) for s in rule.state_scopes)

    def sees_steps(self, identity: Identity, workflow: str) -> bool:
        """Whether a rule grants this identity the steps (every intermediate output) of ``workflow``."""
        return self.enabled and self.authorizer.sees_steps(identity, workflow)

    def authorize_approval(self, identity: Identity, workflow: str) -> None:
        """Raises PermissionDenied (403) unless a rule lets this identity resume ``workflow``'s waits."""
        if self.enabled and not self.authorizer.may_approve(identity, workflow):
            raise PermissionDenied(f"not allowed: {identity.name} may not approve steps of {workflow}", agent=workflow)

    def vouched_user_id(self, identity: Identity) -> str | None:
        """The user id a call carries on: the identity's on listeners that do not trust identity
        headers (whatever the caller said), None (the caller's own) on trusted ones."""
        return None if self.trusted else identity.user_id
