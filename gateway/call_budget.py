"""The call budget of one request tree: how many calls it may make in total.

The hop count (``agw.hops``) bounds how deep calls nest, not how wide they
spread: a manager that delegates to itself twice per round grows
exponentially within any hop limit. So every call also belongs to a *tree*,
named in the baggage (``agw.tree``, set where the tree starts), and every
gateway it passes counts the tree's calls, refusing the one past
``server.max_calls``. The count known when a call leaves travels along in
``agw.calls``, so a gateway the tree reaches later continues from it: a chain
through gateways is counted whole, and a tree spread over several gateways
makes at most ``max_calls`` calls at each.

When the call that started a tree here is cancelled (its caller went away),
the tree is cancelled: calls of it that came back to this gateway through an
agent are cancelled too, and new ones are refused for a while.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

from gateway.model import Cancelled, Invocation, ResourceExhausted, evolve
from gateway.propagation import CALLS_BAGGAGE, HOPS_BAGGAGE, TREE_BAGGAGE

# How long a cancelled tree's later calls are refused.
CANCELLED_MEMORY = 120.0


@dataclass(eq=False, slots=True)
class CallTree:
    """One request tree's calls as this gateway knows them."""

    tree_id: str
    used: int = 0
    # Calls of the tree in flight here (the entry is forgotten at zero).
    active: int = 0
    # Tasks serving calls that re-entered this gateway (through an agent): cancelled with the tree.
    members: set[asyncio.Task[object]] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class TreeCall:
    """One counted call: its tree, whether it started the tree, the task it registered."""

    tree: CallTree
    root: bool
    member: asyncio.Task[object] | None


class CallTrees:
    """The trees with calls in flight in this gateway."""

    def __init__(self) -> None:
        self._trees: dict[str, CallTree] = {}
        self._cancelled: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._trees)

    def enter(
        self, invocation: Invocation, limit: int, *, track_task: bool = True, hops: int | None = None
    ) -> tuple[Invocation, TreeCall]:
        """Count one call of the invocation's tree; returns the invocation with its tree
        in the baggage and the ticket to :meth:`leave` with.

        ``track_task``: the current task is the call's own, to cancel with a cancelled tree.
        ``hops``: the hop count to write into the baggage too (one copy of the invocation, not two).
        Raises ResourceExhausted past the budget, Cancelled for a cancelled tree.
        """
        baggage = invocation.context.baggage
        tree_id = baggage.get(TREE_BAGGAGE, "")
        root = not tree_id
        if root:
            tree_id = uuid.uuid4().hex
        elif tree_id in self._cancelled:
            if self._cancelled[tree_id] > time.monotonic():
                raise Cancelled(
                    "the request this call belongs to was cancelled (its caller went away)", agent=invocation.agent
                )
            del self._cancelled[tree_id]
        tree = self._trees.get(tree_id)
        if tree is None:
            tree = self._trees[tree_id] = CallTree(tree_id)
        raw = baggage.get(CALLS_BAGGAGE, "0")
        seen = int(raw) if raw.isdigit() else 0
        if max(tree.used, seen) >= limit:
            if tree.active == 0:
                del self._trees[tree_id]
            raise ResourceExhausted(
                f"the request has made {max(tree.used, seen)} calls, the limit is {limit} (server.max_calls): "
                "is a manager or workflow delegating to itself?",
                agent=invocation.agent,
                transient=False,
            )
        tree.used = max(tree.used, seen) + 1
        tree.active += 1
        member = None
        if not root and track_task and (member := asyncio.current_task()) is not None:
            tree.members.add(member)
        hop = {HOPS_BAGGAGE: str(hops)} if hops is not None else {}
        baggage = {**baggage, **hop, TREE_BAGGAGE: tree_id, CALLS_BAGGAGE: str(tree.used)}
        return evolve(invocation, context=evolve(invocation.context, baggage=baggage)), TreeCall(tree, root, member)

    def leave(self, call: TreeCall, *, cancelled: bool = False) -> None:
        """The call finished; ``cancelled``: it was cancelled (a root's caller went away)."""
        tree = call.tree
        tree.active -= 1
        if call.member is not None:
            tree.members.discard(call.member)
        if cancelled and call.root:
            self._cancelled[tree.tree_id] = time.monotonic() + CANCELLED_MEMORY
            for member in list(tree.members):
                member.cancel()
            self._forget_expired()
        if tree.active <= 0 and self._trees.get(tree.tree_id) is tree:
            del self._trees[tree.tree_id]

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for tree_id in [t for t, until in self._cancelled.items() if until <= now]:
            del self._cancelled[tree_id]
