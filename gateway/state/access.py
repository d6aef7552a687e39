"""Which scope instance a call may use: its own, from the propagated context.

The session, thread and user ids come from the ``x-session-id``, ``x-thread-id``
and ``x-user-id`` headers (gRPC metadata); the workflow run id comes from the
W3C baggage entry ``agw.run``, which the gateway sets on every step of a
pattern run and which travels on every hop after it. A caller that names a
scope id explicitly must name its own, unless the configuration grants that
scope (``state.allow_explicit_scopes``). :meth:`ScopeAccess.may_use_scope` is the
one decision point: an authorization module replaces or wraps it.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.model import Context, InvalidRequest, PermissionDenied
from gateway.propagation import SESSION_ID, THREAD_ID, USER_ID, WORKFLOW_RUN_BAGGAGE
from gateway.state.store import Scope, ScopeRef

_SOURCE = {
    Scope.SESSION: f"the {SESSION_ID} header",
    Scope.THREAD: f"the {THREAD_ID} header",
    Scope.USER: f"the {USER_ID} header",
    Scope.WORKFLOW: f"the baggage entry {WORKFLOW_RUN_BAGGAGE}",
}


def parse_scope(name: str) -> Scope:
    try:
        return Scope(name)
    except ValueError:
        names = ", ".join(s.value for s in Scope)
        raise InvalidRequest(f"unknown state scope {name!r}: use one of {names}") from None


def own_scope_id(scope: Scope, context: Context) -> str:
    """The caller's own id for ``scope`` (empty when its context carries none)."""
    if scope is Scope.SESSION:
        return context.session_id
    if scope is Scope.THREAD:
        return context.thread_id
    if scope is Scope.USER:
        return context.user_id
    return context.baggage.get(WORKFLOW_RUN_BAGGAGE, "")


class ScopeAccess:
    """Resolves the scope a state call addresses and decides whether it may."""

    def __init__(self, allow_explicit_scopes: Iterable[Scope] = ()) -> None:
        self.allow_explicit_scopes = frozenset(allow_explicit_scopes)

    def may_use_scope(self, scope: Scope, scope_id: str, context: Context, granted: Iterable[str] = ()) -> bool:
        """True when the caller (``context``) may read and write ``scope`` ``scope_id``;
        ``granted`` are the scopes the caller's identity may name explicitly (security.authorization)."""
        if scope_id == own_scope_id(scope, context):
            return True
        return scope in self.allow_explicit_scopes or scope.value in granted

    def resolve(self, scope: Scope, explicit_id: str, context: Context, granted: Iterable[str] = ()) -> ScopeRef:
        """The addressed scope: ``explicit_id`` when given, else the caller's own.

        Raises InvalidRequest when there is no id at all and PermissionDenied when
        the explicit id is not the caller's and the scope is not granted.
        """
        scope_id = explicit_id or own_scope_id(scope, context)
        if not scope_id:
            raise InvalidRequest(
                f"the {scope.value} scope needs an id: send {_SOURCE[scope]}",
                details={"scope": scope.value},
            )
        if not self.may_use_scope(scope, scope_id, context, granted):
            raise PermissionDenied(
                f"the {scope.value} scope id {scope_id!r} is not the caller's own ({_SOURCE[scope]}); "
                "name only your own scope, or grant the scope in state.allow_explicit_scopes",
                details={"scope": scope.value},
            )
        return ScopeRef(scope, scope_id)
