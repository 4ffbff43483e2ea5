"""A CSC-style remote hash-signing service on 127.0.0.1, faithful to the confirm-on-phone flow.

``signHash`` never signs by itself for a credential with ``auto_confirm=False``: it answers
``202 {"transactionID"}`` and the signature exists only after an explicit
``POST /_test/confirm/{transactionID}`` (the officer pressing "confirm" in the app). On confirm it
calls the ``callbackUrl`` given in the request, if any. Requests need the Bearer secret.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from tests.fakes.signing_pki import Issued


@dataclass
class Credential:
    issued: Issued
    chain: list[bytes]
    auto_confirm: bool = False


@dataclass
class Transaction:
    credential_id: str
    digest: bytes
    callback_url: str
    status: str = "pending"
    signature: bytes = b""
    seen_hashes: list[bytes] = field(default_factory=list)


class FakeRemoteSigner:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.credentials: dict[str, Credential] = {}
        self.transactions: dict[str, Transaction] = {}
        self.received_bodies: list[dict[str, object]] = []
        self.callbacks_sent = 0
        self.app = web.Application()
        r = self.app.router
        r.add_post("/csc/v2/credentials/info", self._info)
        r.add_post("/csc/v2/signatures/signHash", self._sign_hash)
        r.add_post("/csc/v2/signatures/status", self._status)
        r.add_post("/_test/confirm/{tid}", self._confirm)
        r.add_post("/_test/reject/{tid}", self._reject)

    def add(self, credential_id: str, issued: Issued, chain: list[bytes], *, auto_confirm: bool = False) -> None:
        der = issued.cert.public_bytes(serialization.Encoding.DER)
        self.credentials[credential_id] = Credential(issued, [der, *chain], auto_confirm)

    def _auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.secret}":
            raise web.HTTPUnauthorized(text='{"error":"invalid_token"}', content_type="application/json")

    async def _info(self, request: web.Request) -> web.Response:
        self._auth(request)
        body = await request.json()
        cred = self.credentials.get(body.get("credentialID"))
        if cred is None:
            raise web.HTTPBadRequest(text='{"error":"invalid_request"}', content_type="application/json")
        return web.json_response({"cert": {"status": "valid",
                                           "certificates": [base64.b64encode(c).decode() for c in cred.chain]},
                                  "key": {"status": "enabled", "algo": ["1.2.840.113549.1.1.11"], "len": 2048}})

    def _sign(self, cred: Credential, digest: bytes) -> bytes:
        key = cred.issued.key
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

    async def _sign_hash(self, request: web.Request) -> web.Response:
        self._auth(request)
        body = await request.json()
        self.received_bodies.append(body)
        cred = self.credentials.get(body.get("credentialID"))
        if cred is None or len(body.get("hashes", [])) != 1:
            raise web.HTTPBadRequest(text='{"error":"invalid_request"}', content_type="application/json")
        digest = base64.b64decode(body["hashes"][0])
        if len(digest) != 32:
            raise web.HTTPBadRequest(text='{"error":"invalid_hash"}', content_type="application/json")
        if cred.auto_confirm:
            return web.json_response({"signatures": [base64.b64encode(self._sign(cred, digest)).decode()]})
        tid = uuid.uuid4().hex
        self.transactions[tid] = Transaction(body["credentialID"], digest, str(body.get("callbackUrl", "")))
        return web.json_response({"transactionID": tid}, status=202)

    async def _status(self, request: web.Request) -> web.Response:
        self._auth(request)
        tx = self.transactions.get((await request.json()).get("transactionID"))
        if tx is None:
            raise web.HTTPBadRequest(text='{"error":"invalid_request"}', content_type="application/json")
        out: dict[str, object] = {"status": tx.status}
        if tx.status == "signed":
            out["signatures"] = [base64.b64encode(tx.signature).decode()]
        return web.json_response(out)

    async def _confirm(self, request: web.Request) -> web.Response:
        tx = self.transactions[request.match_info["tid"]]
        tx.signature = self._sign(self.credentials[tx.credential_id], tx.digest)
        tx.status = "signed"
        if tx.callback_url:
            async with aiohttp.ClientSession() as s, s.post(tx.callback_url,
                                                            json={"transactionID": request.match_info["tid"]}) as r:
                self.callbacks_sent += r.status == 200
        return web.json_response({"ok": True})

    async def _reject(self, request: web.Request) -> web.Response:
        self.transactions[request.match_info["tid"]].status = "rejected"
        return web.json_response({"ok": True})

    def pending(self) -> list[str]:
        return [tid for tid, tx in self.transactions.items() if tx.status == "pending"]
