"""A throw-away test PKI for mTLS: a CA, a server certificate for 127.0.0.1, client certificates
(valid, expired, from another CA), written as PEM files. EC P-256 keys: quick to make."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Issued:
    """One certificate and its key, as PEM files."""

    cert: x509.Certificate
    cert_path: Path
    key_path: Path

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()

    @property
    def fingerprint(self) -> str:
        """As ``openssl x509 -fingerprint -sha256`` prints it (colons, upper case)."""
        digest = hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
        return ":".join(digest[i:i + 2] for i in range(0, 64, 2))


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])


class TestCA:
    """A root CA that writes what it issues under ``directory``."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(f"{name} Root CA", "dvcgw tests")
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(NOW - dt.timedelta(days=30)).not_valid_after(NOW + dt.timedelta(days=365))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                    critical=True)
                     .add_extension(ski, critical=False)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = directory / f"{name}-ca.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn: str, *, server: bool = False, expired: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        start, end = (NOW - dt.timedelta(days=60), NOW - dt.timedelta(days=1)) if expired else \
            (NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=30))
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (x509.CertificateBuilder().subject_name(_name(cn, "So Tu phap" if not server else "dvcgw"))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = self.dir / f"{cn}.pem", self.dir / f"{cn}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return Issued(cert, cert_path, key_path)


@dataclass(frozen=True)
class Pki:
    ca: TestCA
    other_ca: TestCA
    server: Issued
    client: Issued  # mapped by subject
    pinned: Issued  # mapped by fingerprint
    unmapped: Issued  # issued by the trusted CA, mapped to nobody
    expired: Issued  # mapped by subject, expired
    stranger: Issued  # issued by another CA, with the mapped client's subject


def build_pki(directory: Path) -> Pki:
    ca, other = TestCA(directory, "agencies"), TestCA(directory / "other", "other")
    return Pki(ca, other, ca.issue("gateway", server=True), ca.issue("stp-client"), ca.issue("stp-pinned"),
               ca.issue("nobody"), ca.issue("stp-expired", expired=True), other.issue("stp-client"))


def client_context(pki: Pki, who: Issued | None) -> ssl.SSLContext:
    """A client that trusts the gateway's CA and presents ``who``'s certificate (none with None)."""
    context = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    if who is not None:
        context.load_cert_chain(str(who.cert_path), str(who.key_path))
    return context
