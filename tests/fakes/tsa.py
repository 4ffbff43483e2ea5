"""An RFC 3161 time-stamping authority on 127.0.0.1 (pyHanko's DummyTimeStamper behind real HTTP).

``fail = True`` makes it answer 503, as a TSA that is down behind a proxy would.
"""

from __future__ import annotations

from aiohttp import web
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from tests.fakes.signing_pki import TestPki


def _asn1_cert(c: object) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))  # type: ignore[attr-defined]


class FakeTsa:
    def __init__(self, pki: TestPki) -> None:
        key_der = pki.tsa.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
        self._stamper = DummyTimeStamper(
            tsa_cert=_asn1_cert(pki.tsa.cert), tsa_key=asn1_keys.PrivateKeyInfo.load(key_der),
            certs_to_embed=SimpleCertificateStore.from_certs([_asn1_cert(pki.inter.cert)]),  # type: ignore[no-untyped-call]
        )
        self.fail = False
        self.requests = 0
        self.app = web.Application()
        self.app.router.add_post("/", self._stamp)

    async def _stamp(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.fail:
            return web.Response(status=503, text="down")
        if request.content_type != "application/timestamp-query":
            return web.Response(status=415)
        req = tsp.TimeStampReq.load(await request.read())
        resp = self._stamper.request_tsa_response(req)
        return web.Response(body=resp.dump(), content_type="application/timestamp-reply")
