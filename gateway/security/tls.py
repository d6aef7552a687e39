"""TLS for the fronts (with certificate reload, no restart) and client identities.

HTTP: one ``ssl.SSLContext`` per listener; loading a new chain into it applies
to every later handshake, so a watcher reloads it when the files change.
gRPC: dynamic server credentials whose fetcher hands gRPC the new files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

from gateway.config.schema import ServerTls

log = logging.getLogger("agent_gateway.tls")
RELOAD_CHECK_SECONDS = 5.0


def _mtimes(config: ServerTls) -> tuple[float, ...]:
    files = [config.cert_file, config.key_file, *([config.client_ca_file] if config.client_ca_file else [])]
    return tuple(os.stat(f).st_mtime for f in files)


def server_ssl_context(config: ServerTls) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.cert_file, config.key_file)
    if config.client_ca_file:
        context.load_verify_locations(config.client_ca_file)
    context.verify_mode = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "require": ssl.CERT_REQUIRED}[
        config.client_cert
    ]
    return context


class HttpCertificateReloader:
    """Re-reads the listener's certificate files into its live SSL context when they change."""

    def __init__(self, config: ServerTls, context: ssl.SSLContext) -> None:
        self.config = config
        self.context = context
        self.mtimes = _mtimes(config)
        self.task: asyncio.Task[None] | None = None

    def reload_if_changed(self) -> bool:
        try:
            mtimes = _mtimes(self.config)
            if mtimes == self.mtimes:
                return False
            self.context.load_cert_chain(self.config.cert_file, self.config.key_file)
            if self.config.client_ca_file:
                self.context.load_verify_locations(self.config.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            log.error("keeping the old certificate: cannot load %s: %s", self.config.cert_file, exc)
            return False
        self.mtimes = mtimes
        log.info("reloaded the TLS certificate from %s", self.config.cert_file)
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_CHECK_SECONDS)
            self.reload_if_changed()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def grpc_server_credentials(config: ServerTls) -> grpc.ServerCredentials:
    """Credentials whose certificate follows the files (checked when clients connect)."""
    state: dict[str, Any] = {"mtimes": _mtimes(config)}

    def read() -> grpc.ServerCertificateConfiguration:
        chain = Path(config.cert_file).read_bytes()
        key = Path(config.key_file).read_bytes()
        roots = Path(config.client_ca_file).read_bytes() if config.client_ca_file else None
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=roots)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        try:
            mtimes = _mtimes(config)
            if mtimes == state["mtimes"]:
                return None  # unchanged: gRPC keeps the current one
            fresh = read()
        except OSError as exc:
            log.error("keeping the old gRPC certificate: %s", exc)
            return None
        state["mtimes"] = mtimes
        log.info("reloaded the gRPC TLS certificate from %s", config.cert_file)
        return fresh

    return grpc.dynamic_ssl_server_credentials(
        read(), fetch, require_client_authentication=config.client_cert == "require"
    )


def peer_identities_from_cert(cert: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """subject_cn / san_uri / san_dns from ``SSLObject.getpeercert()``."""
    if not cert:
        return {}
    common_names = tuple(v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName")
    sans = cert.get("subjectAltName", ())
    return {
        "subject_cn": common_names,
        "san_uri": tuple(v for k, v in sans if k == "URI"),
        "san_dns": tuple(v for k, v in sans if k == "DNS"),
    }


def peer_identities_from_grpc(auth_context: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The same, from a gRPC auth context (values are bytes)."""

    def values(key: str) -> tuple[str, ...]:
        return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in auth_context.get(key, ()))

    sans = values("x509_subject_alternative_name")
    return {
        "subject_cn": values("x509_common_name"),
        "san_uri": tuple(s for s in sans if "://" in s),
        "san_dns": tuple(s for s in sans if "://" not in s),
    }
