"""Authentication: API keys (hashed), JWT bearer tokens (JWKS), client certificates.

Every failure raises :class:`~gateway.model.Unauthenticated` with the same
message, so a caller learns nothing about why (which key, which claim).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import jwt

from gateway.config.schema import ApiKey, JwtAuth, MtlsAuth
from gateway.model import Unauthenticated
from gateway.security.identity import Credentials, Identity
from gateway.security.jwks import BoundedJwkClient

log = logging.getLogger("agent_gateway.security")
REJECTED = "authentication required"
JWKS_RECHECK_SECONDS = 1.0


class Authenticator(Protocol):
    method: str

    def authenticate(self, credentials: Credentials) -> Identity | None:
        """The identity, None when these credentials carry nothing for this method;
        raises Unauthenticated when they carry something invalid."""


def _bearer(credentials: Credentials) -> str | None:
    value = credentials.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class ApiKeyAuthenticator:
    """``x-api-key: <key>`` (or ``authorization: Bearer <key>`` when it is not a JWT)."""

    method = "api_key"

    def __init__(self, keys: Sequence[ApiKey]) -> None:
        self.keys = [(bytes.fromhex(k.sha256.lower()), k.identity) for k in keys]

    def authenticate(self, credentials: Credentials) -> Identity | None:
        presented = credentials.headers.get("x-api-key") or _bearer(credentials)
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


class JwtAuthenticator:
    """``authorization: Bearer <jwt>`` verified against a JWKS (file or URL):
    signature, issuer, audience, expiry (with leeway)."""

    method = "jwt"

    def __init__(self, config: JwtAuth) -> None:
        self.config = config
        self._client = BoundedJwkClient(config.jwks_url, lifespan=300) if config.jwks_url else None
        self._file_keys: jwt.PyJWKSet | None = None
        self._file_mtime = 0.0
        self._file_checked = -JWKS_RECHECK_SECONDS

    def _file_key_set(self, recheck: bool) -> jwt.PyJWKSet:
        """The JWKS file's keys, re-read when the file changed; its mtime is looked at once a
        second at most (``recheck`` forces a look: a token names a key we do not know yet)."""
        now = time.monotonic()
        if self._file_keys is None or recheck or now - self._file_checked >= JWKS_RECHECK_SECONDS:
            self._file_checked = now
            path = Path(self.config.jwks_file or "")
            mtime = path.stat().st_mtime
            if self._file_keys is None or mtime != self._file_mtime:
                self._file_keys = jwt.PyJWKSet.from_dict(json.loads(path.read_text(encoding="utf-8")))
                self._file_mtime = mtime
        return self._file_keys

    def _key(self, token: str) -> jwt.PyJWK:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token)
        kid = jwt.get_unverified_header(token).get("kid")
        for recheck in (False, True):  # an unknown kid may be a key rotated in a moment ago
            for key in self._file_key_set(recheck).keys:
                if kid is None or key.key_id == kid:
                    return key
        raise jwt.InvalidKeyError("no key with that kid")

    def authenticate(self, credentials: Credentials) -> Identity | None:
        token = _bearer(credentials)
        if token is None or token.count(".") != 2:
            return None
        try:
            key = self._key(token)
            claims = jwt.decode(
                token,
                key=key,
                algorithms=self.config.algorithms,
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except (jwt.PyJWTError, OSError, ValueError) as exc:
            log.info("rejected a bearer token: %s", type(exc).__name__)
            raise Unauthenticated(REJECTED) from None
        name = claims.get(self.config.identity_claim)
        if not isinstance(name, str) or not name:
            raise Unauthenticated(REJECTED)
        user = claims.get(self.config.user_claim)
        return Identity(name, self.method, user_id=user if isinstance(user, str) else "", claims=claims)


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
