"""Key sources: PKCS#12/PEM files, PKCS#11 tokens, and remote (CSC-style) services.

Two views of a key:

* :class:`KeyInfo` (parent process): alias, allowed agencies, certificate and chain. Built once at
  start-up; for file keys it also proves the passphrase works and the key matches the certificate.
* :func:`load_signer` (worker process): a pyHanko ``Signer`` holding the parsed key (or an open
  PKCS#11 session) for the life of the worker, so no signature re-parses or re-validates a key.

Passphrases and PINs are never logged nor put into exception messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.sign.signers.pdf_cms import Signer, SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore

from config.schema import SigningKeySettings
from core.errors import ConfigError
from signing.errors import SigningError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class KeyInfo:
    """What the parent knows about a key: never the private key itself."""

    alias: str
    source: str
    agencies: tuple[str, ...]
    cert_der: bytes
    chain_der: tuple[bytes, ...]

    @property
    def not_after(self) -> datetime:
        return x509.load_der_x509_certificate(self.cert_der).not_valid_after_utc


def secret(value: str, env_name: str, environ: dict[str, str] | None = None) -> str:
    """The secret from settings (``*_file`` already resolved), else from the named environment variable."""
    if value or not env_name:
        return value
    env = os.environ if environ is None else environ
    return env.get(env_name, "")


def _to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _load_certs(path: str) -> list[x509.Certificate]:
    data = Path(path).read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


@dataclass(frozen=True)
class FileKey:
    key: PrivateKey
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def read_file_key(ks: SigningKeySettings, environ: dict[str, str] | None = None) -> FileKey:
    """Parses a file key (PKCS#12, or PEM/DER key + certificate + chain); raises ConfigError."""
    where = f"signing.keys[{ks.alias}]"
    pw = secret(ks.passphrase, ks.passphrase_env, environ).encode() or None
    try:
        if ks.pkcs12_file:
            key, cert, extra = pkcs12.load_key_and_certificates(Path(ks.pkcs12_file).read_bytes(), pw)
            chain = [*extra, *(c for f in ks.chain_files for c in _load_certs(f))]
        else:
            key = _load_private_key(Path(ks.key_file).read_bytes(), pw)
            cert = _load_certs(ks.cert_file)[0]
            chain = [c for f in ks.chain_files for c in _load_certs(f)]
    except OSError as exc:
        raise ConfigError(where, f"cannot read key material: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        # cryptography's messages name neither passphrase nor key bytes
        raise ConfigError(where, "cannot decode the key or certificate (wrong passphrase or format)") from exc
    if key is None or cert is None or not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(where, "an RSA or EC private key and its certificate are required")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise ConfigError(where, "the private key does not match the certificate")
    return FileKey(key, cert, tuple(chain))


def _load_private_key(data: bytes, pw: bytes | None) -> Any:
    if b"-----BEGIN" in data:
        return serialization.load_pem_private_key(data, pw)
    return serialization.load_der_private_key(data, pw)


class CachedKeySigner(SimpleSigner):
    """SimpleSigner that keeps the parsed pyca key: pyHanko's re-parses (and re-validates) it per signature."""

    def __init__(self, fk: FileKey) -> None:
        der = fk.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
        super().__init__(
            signing_cert=_to_asn1(fk.cert), signing_key=asn1_keys.PrivateKeyInfo.load(der),
            cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
                [_to_asn1(c) for c in fk.chain]),
        )
        self._pyca_key = fk.key

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        from pyhanko.sign.general import get_pyca_cryptography_hash  # type: ignore[attr-defined]
        mech = self.get_signature_mechanism_for_digest(digest_algorithm).signature_algo
        hash_algo = get_pyca_cryptography_hash(digest_algorithm)
        key = self._pyca_key
        if mech == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hash_algo)
        if mech == "ecdsa" and isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hash_algo))
        return super().sign_raw(data, digest_algorithm)


def _pkcs11_signer(ks: SigningKeySettings, environ: dict[str, str] | None = None) -> Signer:
    from pkcs11 import PKCS11Error
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session

    chain = [_to_asn1(c) for f in ks.chain_files for c in _load_certs(f)]
    try:
        session = open_pkcs11_session(ks.module, token_criteria=TokenCriteria(label=ks.token_label),
                                      user_pin=secret(ks.pin, ks.pin_env, environ) or None)
    except (PKCS11Error, OSError, RuntimeError) as exc:
        raise ConfigError(f"signing.keys[{ks.alias}]",
                          f"cannot open PKCS#11 token {ks.token_label!r}: {type(exc).__name__}") from exc
    return PKCS11Signer(session, cert_label=ks.cert_label or ks.key_label, key_label=ks.key_label,
                        ca_chain=chain, other_certs_to_pull=())


def load_signer(ks: SigningKeySettings) -> Signer:
    """A ready pyHanko Signer for a file or PKCS#11 key; raises ConfigError."""
    if ks.source == "file":
        return CachedKeySigner(read_file_key(ks))
    if ks.source == "pkcs11":
        return _pkcs11_signer(ks)
    raise SigningError(f"key {ks.alias!r} is not held by the gateway")


async def ensure_loaded(signer: Signer) -> None:
    """PKCS#11 signers fetch their certificates lazily; do it once up front."""
    loader = getattr(signer, "ensure_objects_loaded", None)
    if loader is not None:
        await loader()


def key_info_from_signer(ks: SigningKeySettings, signer: Signer) -> KeyInfo:
    cert = signer.signing_cert
    if cert is None:
        raise ConfigError(f"signing.keys[{ks.alias}]", "no signing certificate found")
    chain = tuple(c.dump() for c in signer.cert_registry if c.dump() != cert.dump())
    return KeyInfo(ks.alias, ks.source, ks.agencies, cert.dump(), chain)


def key_info_from_der(ks: SigningKeySettings, certs: list[bytes]) -> KeyInfo:
    return KeyInfo(ks.alias, ks.source, ks.agencies, certs[0], tuple(certs[1:]))


def check_key_settings(ks: SigningKeySettings) -> None:
    """Raises ConfigError when the keys a source needs are missing."""
    where = f"signing.keys[{ks.alias}]"
    if ks.source == "file" and not (ks.pkcs12_file or (ks.key_file and ks.cert_file)):
        raise ConfigError(where, "a file key needs pkcs12_file, or key_file and cert_file")
    if ks.source == "pkcs11" and not (ks.module and ks.token_label and ks.key_label):
        raise ConfigError(where, "a PKCS#11 key needs module, token_label and key_label")
    if ks.source == "remote" and not (ks.url and ks.credential_id):
        raise ConfigError(where, "a remote key needs url and credential_id")
