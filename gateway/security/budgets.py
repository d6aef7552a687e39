"""Token budgets per identity: model tokens the agents report, counted in fixed windows.

A call is admitted while the identity's window still has tokens left; what the call reports
using is added when it ends (a call cannot know its cost beforehand, so the last call of a window
may overrun it: the next is refused). In process, like the rate limiter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase

from gateway.config.schema import TokenBudget
from gateway.model import Invocation, ResourceExhausted

_MAX_WINDOWS = 100_000  # bounded memory under many identities: the oldest windows are dropped


class TokenBudgets:
    def __init__(self, budgets: Sequence[TokenBudget], clock: Callable[[], float] = time.monotonic) -> None:
        self.budgets = list(budgets)
        self.clock = clock
        # (budget index, identity) -> [window start, tokens used]
        self.windows: dict[tuple[int, str], list[float]] = {}

    def _windows(self, identity: str) -> list[tuple[TokenBudget, list[float]]]:
        now = self.clock()
        found = []
        for index, budget in enumerate(self.budgets):
            if not any(fnmatchcase(identity, p) for p in budget.identities):
                continue
            window = self.windows.get((index, identity))
            if window is None or now - window[0] >= budget.window:
                if window is None and len(self.windows) >= _MAX_WINDOWS:
                    self.windows.pop(next(iter(self.windows)))
                window = self.windows[(index, identity)] = [now, 0.0]
            found.append((budget, window))
        return found

    def check(self, identity: str) -> None:
        """Raises ResourceExhausted (429, with Retry-After) when a budget of ``identity`` is spent."""
        if not self.budgets:
            return
        for budget, (start, used) in self._windows(identity):
            if used >= budget.tokens:
                wait = max(0.0, start + budget.window - self.clock())
                raise ResourceExhausted(
                    f"token budget of {budget.tokens} per {budget.window:g}s spent for {identity}; "
                    f"retry in {wait:.0f}s",
                    retry_after=wait,
                )

    def spend(self, identity: str, tokens: int) -> None:
        if not self.budgets or tokens <= 0:
            return
        for _, window in self._windows(identity):
            window[1] += tokens

    def spent_by(self, invocation: Invocation) -> None:
        """A finished call's reported tokens, charged to its caller (the call observer's hook)."""
        if invocation.record.usage is not None:
            self.spend(invocation.caller.name or "anonymous", invocation.record.usage.total)
