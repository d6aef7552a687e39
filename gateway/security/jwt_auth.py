"""JWT bearer tokens verified against a JWKS (file or URL).

Its own module so that PyJWT and cryptography (about 10 MB of resident memory) load only
when ``security.jwt`` is configured (see :class:`gateway.security.guard.ListenerGuard`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt

from gateway.config.schema import JwtAuth
from gateway.model import Unauthenticated
from gateway.security.authn import REJECTED, bearer_token, log
from gateway.security.identity import Credentials, Identity
from gateway.security.jwks import BoundedJwkClient

JWKS_RECHECK_SECONDS = 1.0


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
        token = bearer_token(credentials)
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
