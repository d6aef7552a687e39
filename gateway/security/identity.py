"""The caller as the gateway knows it, and the raw material it is proven from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.model import ANONYMOUS_CALLER, Caller


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a caller presented: headers/metadata (lower-case keys) and, with
    mTLS, the verified peer certificate's identities."""

    headers: Mapping[str, str]
    peer_identities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    peer_address: str = ""


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller. ``name`` is what authorization rules match;
    ``user_id`` is who the caller acts for (it replaces any x-user-id header
    on listeners that do not trust identity headers)."""

    name: str
    method: str
    user_id: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def caller(self) -> Caller:
        """The identity as routes see it (the model's view, without how it was proven)."""
        if self.method == "none":
            return ANONYMOUS_CALLER
        return Caller(self.name, self.claims)


ANONYMOUS = Identity("anonymous", "none")
