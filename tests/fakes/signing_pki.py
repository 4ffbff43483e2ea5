"""A real test PKI (cryptography) and its revocation servers: OCSP responder and CRLs on 127.0.0.1.

Layout: root CA → intermediate CA → {OCSP responder, TSA, signer certificates (RSA-2048)}. Signer
and TSA certificates carry the OCSP (AIA) and CRL distribution-point URLs of :class:`PkiServer`.
A second, unrelated root issues an "untrusted" signer. Serial numbers are random.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DVC Gateway Test PKI"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Issued:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def pem_cert(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def pem_key(self, password: bytes | None = None) -> bytes:
        enc = (serialization.BestAvailableEncryption(password) if password
               else serialization.NoEncryption())
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _ca_ku() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                         encipher_only=False, decipher_only=False)


def _leaf_ku(non_repudiation: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=non_repudiation, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                         encipher_only=False, decipher_only=False)


@dataclass
class TestPki:
    base_url: str
    root: Issued = field(init=False)
    inter: Issued = field(init=False)
    ocsp: Issued = field(init=False)
    tsa: Issued = field(init=False)
    other_root: Issued = field(init=False)
    signers: dict[str, Issued] = field(default_factory=dict)
    revoked: dict[int, dt.datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = self._ca("DVCGW Test Root CA", None, crl=None)
        self.inter = self._ca("DVCGW Test Issuing CA", self.root, crl="root")
        self.ocsp = self._leaf("DVCGW Test OCSP", ExtendedKeyUsageOID.OCSP_SIGNING, ocsp_nocheck=True)
        # pyHanko's DummyTimeStamper (behind the fake TSA) is RSA-only
        self.tsa = self._leaf("DVCGW Test TSA", ExtendedKeyUsageOID.TIME_STAMPING, rsa_key=True)
        self.other_root = self._ca("Untrusted Root", None, crl=None)

    # ---------------------------------------------------------- issuing

    def _builder(self, cn: str, pub: object, issuer: Issued | None, days: int = 365) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(_name(cn))
                .issuer_name(issuer.cert.subject if issuer else _name(cn))
                .public_key(pub).serial_number(x509.random_serial_number())  # type: ignore[arg-type]
                .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=days)))

    def _revocation_urls(self, b: x509.CertificateBuilder, crl: str, with_ocsp: bool) -> x509.CertificateBuilder:
        b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(f"{self.base_url}/crl/{crl}.crl")], None, None, None)]), False)
        if with_ocsp:
            b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{self.base_url}/ocsp"))]),
                False)
        return b

    def _ca(self, cn: str, issuer: Issued | None, *, crl: str | None) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        b = self._builder(cn, key.public_key(), issuer, days=3650)
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), True).add_extension(_ca_ku(), True)
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        if crl:
            b = self._revocation_urls(b, crl, with_ocsp=False)
        signer = issuer.key if issuer else key
        return Issued(key, b.sign(signer, hashes.SHA256()))  # type: ignore[arg-type]

    def _leaf(self, cn: str, eku: x509.ObjectIdentifier | None = None, *, ocsp_nocheck: bool = False,
              rsa_key: bool = False, issuer: Issued | None = None, urls: bool = True) -> Issued:
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            rsa.generate_private_key(65537, 2048) if rsa_key else ec.generate_private_key(ec.SECP256R1()))
        issuer = issuer or self.inter
        b = self._builder(cn, key.public_key(), issuer)
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        b = b.add_extension(_leaf_ku(non_repudiation=eku is None), True)
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False)  # type: ignore[arg-type]
        if eku is not None:
            b = b.add_extension(x509.ExtendedKeyUsage([eku]), True)
        if ocsp_nocheck:
            b = b.add_extension(x509.OCSPNoCheck(), False)
        elif urls:
            b = self._revocation_urls(b, "inter", with_ocsp=True)
        return Issued(key, b.sign(issuer.key, hashes.SHA256()))  # type: ignore[arg-type]

    def signer(self, name: str, *, untrusted: bool = False) -> Issued:
        """An RSA-2048 signing certificate (non-repudiation), cached by name."""
        if name not in self.signers:
            self.signers[name] = self._leaf(f"Test signer {name}", rsa_key=True,
                                            issuer=self.other_root if untrusted else None, urls=not untrusted)
        return self.signers[name]

    def revoke(self, cert: x509.Certificate, when: dt.datetime | None = None) -> None:
        self.revoked[cert.serial_number] = when or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    # ---------------------------------------------------------- files

    def write_signer_files(self, name: str, directory: Path, passphrase: bytes) -> dict[str, Path]:
        """PEM key (encrypted), PEM cert, chain PEM and a PKCS#12 with key, cert and chain."""
        s = self.signer(name)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"key": directory / f"{name}.key.pem", "cert": directory / f"{name}.crt.pem",
                 "chain": directory / "chain.pem", "p12": directory / f"{name}.p12"}
        paths["key"].write_bytes(s.pem_key(passphrase))
        paths["cert"].write_bytes(s.pem_cert())
        paths["chain"].write_bytes(self.inter.pem_cert())
        paths["p12"].write_bytes(pkcs12.serialize_key_and_certificates(
            name.encode(), s.key, s.cert, [self.inter.cert], serialization.BestAvailableEncryption(passphrase)))  # type: ignore[arg-type]
        return paths

    def write_roots(self, directory: Path) -> tuple[Path, Path]:
        """(trusted root PEM, untrusted root PEM)."""
        directory.mkdir(parents=True, exist_ok=True)
        root, other = directory / "root.pem", directory / "other-root.pem"
        root.write_bytes(self.root.pem_cert())
        other.write_bytes(self.other_root.pem_cert())
        return root, other

    # ---------------------------------------------------------- revocation answers

    def crl(self, name: str) -> bytes:
        issuer = self.root if name == "root" else self.inter
        now = dt.datetime.now(dt.UTC)
        b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject)
             .last_update(now - dt.timedelta(minutes=1)).next_update(now + dt.timedelta(hours=1)))
        for serial, when in self.revoked.items():
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                          .revocation_date(when).build())
        return b.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)  # type: ignore[arg-type]

    def ocsp_response(self, request_der: bytes) -> bytes:
        req = ocsp.load_der_ocsp_request(request_der)
        subject = self._by_serial(req.serial_number)
        if subject is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
                serialization.Encoding.DER)
        now = dt.datetime.now(dt.UTC)
        when = self.revoked.get(req.serial_number)
        b = ocsp.OCSPResponseBuilder().add_response(
            cert=subject, issuer=self.inter.cert, algorithm=req.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.REVOKED if when else ocsp.OCSPCertStatus.GOOD,
            this_update=now - dt.timedelta(minutes=1), next_update=now + dt.timedelta(hours=1),
            revocation_time=when, revocation_reason=x509.ReasonFlags.key_compromise if when else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, self.ocsp.cert).certificates([self.ocsp.cert])
        for ext in req.extensions:
            if isinstance(ext.value, x509.OCSPNonce):
                b = b.add_extension(ext.value, critical=False)
        return b.sign(self.ocsp.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)  # type: ignore[arg-type]

    def _by_serial(self, serial: int) -> x509.Certificate | None:
        for issued in (self.tsa, self.ocsp, *self.signers.values()):
            if issued.cert.serial_number == serial:
                return issued.cert
        return None


class PkiServer:
    """OCSP (POST /ocsp, GET /ocsp/<b64>) and CRLs (GET /crl/<name>.crl) for a :class:`TestPki`."""

    def __init__(self) -> None:
        self.pki: TestPki | None = None
        self.requests = 0
        self.app = web.Application()
        self.app.router.add_post("/ocsp", self._ocsp_post)
        self.app.router.add_get("/ocsp/{req:.+}", self._ocsp_get)
        self.app.router.add_get("/crl/{name}.crl", self._crl)

    async def _ocsp_post(self, request: web.Request) -> web.Response:
        assert self.pki is not None
        self.requests += 1
        return web.Response(body=self.pki.ocsp_response(await request.read()),
                            content_type="application/ocsp-response")

    async def _ocsp_get(self, request: web.Request) -> web.Response:
        import base64
        from urllib.parse import unquote
        assert self.pki is not None
        self.requests += 1
        der = base64.b64decode(unquote(request.match_info["req"]))
        return web.Response(body=self.pki.ocsp_response(der), content_type="application/ocsp-response")

    async def _crl(self, request: web.Request) -> web.Response:
        assert self.pki is not None
        self.requests += 1
        return web.Response(body=self.pki.crl(request.match_info["name"]), content_type="application/pkix-crl")
