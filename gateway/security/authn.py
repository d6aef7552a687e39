"""Authentication: API keys (hashed), client certificates; JWT bearer tokens (JWKS) are
in :mod:`gateway.security.jwt_auth`, loaded only when configured.

Every failure raises :class:`~gateway.model.Unauthenticated` with the same
message, so a caller learns nothing about why (which key, which claim).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from typing import Protocol

from gateway.config.schema import ApiKey, MtlsAuth
from gateway.model import Unauthenticated
from gateway.security.identity import Credentials, Identity

log = logging.getLogger("agent_gateway.security")
REJECTED = "authentication required"


class Authenticator(Protocol):
    method: str

    def authenticate(self, credentials: Credentials) -> Identity | None:
        """The identity, None when these credentials carry nothing for this method;
        raises Unauthenticated when they carry something invalid."""


def bearer_token(credentials: Credentials) -> str | None:
    value = credentials.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class ApiKeyAuthenticator:
    """``x-api-key: <key>`` (or ``authorization: Bearer <key>`` when it is not a JWT)."""

    method = "api_key"

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self.keys = [(bytes.fromhex(k.sha256.lower()), k.identity) for k in keys]

    def authenticate(self, credentials: Credentials) -> Identity | None:
        presented = credentials.headers.get("x-api-key") or bearer_token(credentials)
        if not presented or presented.count(".") == 2:  # three dot-separated parts: a JWT, not ours
            return None
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for expected, identity in self.keys:  # compare with every key: no timing hint of which matched
            if hmac.compare_digest(digest, expected):
                found = identity
        if found is None:
            raise Unauthenticated(REJECTED)
        return Identity(found, self.method, user_id=found)


class MtlsAuthenticator:
    """The verified client certificate's subject CN or SAN (URI, e.g. SPIFFE ids, or DNS)."""

    method = "mtls"

    def __init__(self, config: MtlsAuth) -> None:
        self.field = config.identity_from

    def authenticate(self, credentials: Credentials) -> Identity | None:
        values = credentials.peer_identities.get(self.field, ())
        if not values:
            return None
        return Identity(values[0], self.method, user_id=values[0])
