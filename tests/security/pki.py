"""A throwaway PKI for tests: a CA, server and client certificates, and a JWKS with signed tokens."""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass
class Issued:
    cert: Path
    key: Path


class CertificateAuthority:
    """Signs certificates into ``directory``."""

    def __init__(self, directory: Path, name: str = "agent-gateway test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_file = directory / f"{name.replace(' ', '-')}.pem"
        self.cert_file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        common_name: str,
        *,
        server: bool = False,
        uri: str | None = None,
        stem: str | None = None,
        dns_names: tuple[str, ...] = (),
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        names: list[x509.GeneralName] = []
        if server:
            names += [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
        names += [x509.DNSName(name) for name in dns_names]
        if uri:
            names.append(x509.UniformResourceIdentifier(uri))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        stem = stem or common_name
        issued = Issued(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(_pem_key(key))
        return issued


class TokenIssuer:
    """An RSA signing key published as a JWKS file, and tokens signed with it."""

    def __init__(self, jwks_file: Path, kid: str = "key-1", issuer: str = "https://issuer.test") -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid
        self.issuer = issuer
        self.jwks_file = jwks_file
        self.publish()

    def publish(self) -> None:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update(kid=self.kid, use="sig", alg="RS256")
        self.jwks_file.write_text(json.dumps({"keys": [public]}), encoding="utf-8")

    def token(self, subject: str, audience: str = "agent-gateway", lifetime: float = 300, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": audience, "sub": subject, "iat": now, "exp": now + lifetime, **claims}
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})
