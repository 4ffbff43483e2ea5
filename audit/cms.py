"""Checks of the two signed objects a seal carries, with asn1crypto and cryptography only: the seal's
detached CMS signature over its statement, and the RFC 3161 token over the seals' tree root.

Each check proves that the content is what the embedded certificate's key signed; whether that
certificate is trusted is the auditor's question, answered by ``openssl cms|ts -verify -CAfile``
as the exported archive's README shows (trust roots are not the log's to decide).
"""

from __future__ import annotations

import hashlib

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


class BadSignature(Exception):
    """The signed object does not verify (the message says what failed)."""


def _signer_cert(sd: cms.SignedData, si: cms.SignerInfo) -> x509.Certificate:
    sid = si["sid"]
    for c in sd["certificates"] or []:
        cert = c.chosen
        if sid.name == "issuer_and_serial_number":
            if cert.serial_number == sid.chosen["serial_number"].native and cert.issuer == sid.chosen["issuer"]:
                return x509.load_der_x509_certificate(cert.dump())
        elif cert.key_identifier == sid.chosen.native:
            return x509.load_der_x509_certificate(cert.dump())
    raise BadSignature("the signer's certificate is not embedded")


def _check(sd: cms.SignedData, content: bytes) -> x509.Certificate:
    """Verifies the single SignerInfo of ``sd`` over ``content``; returns the signer certificate."""
    infos = sd["signer_infos"]
    if len(infos) != 1:
        raise BadSignature("expected exactly one signer")
    si = infos[0]
    algo = si["digest_algorithm"]["algorithm"].native
    if algo not in _HASHES:
        raise BadSignature(f"unsupported digest {algo}")
    attrs = {a["type"].native: a["values"][0].native for a in si["signed_attrs"]}
    if attrs.get("message_digest") != hashlib.new(algo, content).digest():
        raise BadSignature("the signed digest does not match the content")
    cert = _signer_cert(sd, si)
    signed = si["signed_attrs"].untag().dump()  # the DER of the SET OF, as signed
    sig, key, h = si["signature"].native, cert.public_key(), _HASHES[algo]()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if "pss" in si["signature_algorithm"]["algorithm"].native:
                raise BadSignature("RSASSA-PSS seals are not supported")
            key.verify(sig, signed, padding.PKCS1v15(), h)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, signed, ec.ECDSA(h))
        else:
            raise BadSignature("unsupported key type")
    except InvalidSignature as exc:
        raise BadSignature("the signature value does not verify") from exc
    return cert


def verify_detached(cms_der: bytes, content: bytes) -> x509.Certificate:
    """The seal's signature over its statement; raises BadSignature."""
    try:
        info = cms.ContentInfo.load(cms_der)
        sd = info["content"]
        return _check(sd, content)
    except BadSignature:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise BadSignature(f"not a CMS signature: {type(exc).__name__}") from exc


def verify_token(token_der: bytes, digest: bytes) -> tuple[x509.Certificate, str]:
    """An RFC 3161 token over ``digest`` (SHA-256); returns the TSA certificate and the stamped time
    (ISO 8601); raises BadSignature."""
    try:
        sd = cms.ContentInfo.load(token_der)["content"]
        encap = sd["encap_content_info"]
        tst_der = encap["content"].parsed.dump() if encap["content"].parsed is not None else encap["content"].native
        tst = tsp.TSTInfo.load(tst_der)
        imprint = tst["message_imprint"]
        if imprint["hash_algorithm"]["algorithm"].native != "sha256" or imprint["hashed_message"].native != digest:
            raise BadSignature("the time-stamp is over another digest")
        cert = _check(sd, tst_der)
        return cert, tst["gen_time"].native.isoformat()
    except BadSignature:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise BadSignature(f"not a time-stamp token: {type(exc).__name__}") from exc
