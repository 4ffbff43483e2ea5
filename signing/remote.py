"""Client for a CSC-style remote signing service that signs a hash (only the digest leaves us).

Protocol (Cloud Signature Consortium API v2 shape, with asynchronous confirmation as SmartCA
and MySign do it), all ``POST`` JSON with ``Authorization: Bearer <client_secret>``:

* ``{url}/csc/v2/credentials/info`` ``{"credentialID", "certificates": "chain"}`` →
  ``{"cert": {"certificates": [base64 DER, signer first]}}``
* ``{url}/csc/v2/signatures/signHash`` ``{"credentialID", "hashes": [b64], "hashAlgorithmOID",
  "signAlgo", "clientData", "callbackUrl"?}`` → ``200 {"signatures": [b64]}`` when signed at once,
  or ``202 {"transactionID"}`` while a person confirms on a phone.
* ``{url}/csc/v2/signatures/status`` ``{"transactionID"}`` →
  ``{"status": "pending" | "signed" | "rejected" | "expired", "signatures": [b64]?}``

Envelopes are pure functions; :meth:`RemoteSigner._post` is the one place that touches the network.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import aiohttp

from config.schema import SigningKeySettings
from signing.errors import SigningError, SigningUnavailable

SHA256_OID = "2.16.840.1.101.3.4.2.1"
RSA_SHA256_OID = "1.2.840.113549.1.1.11"


@dataclass(frozen=True)
class HashResult:
    """``signature`` when signed now, else ``transaction_id`` to poll; ``state`` from the service."""

    state: str
    signature: bytes = b""
    transaction_id: str = ""


def sign_hash_body(credential_id: str, digest: bytes, client_data: str, callback_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "credentialID": credential_id, "hashes": [base64.b64encode(digest).decode()],
        "hashAlgorithmOID": SHA256_OID, "signAlgo": RSA_SHA256_OID, "clientData": client_data,
    }
    if callback_url:
        body["callbackUrl"] = callback_url
    return body


def parse_hash_result(status: int, body: Any) -> HashResult:
    """Reads a signHash or status answer; raises SigningError for a malformed one."""
    if not isinstance(body, dict):
        raise SigningError("remote signer answered with a non-object body")
    sigs = body.get("signatures")
    if isinstance(sigs, list) and sigs:
        return HashResult("signed", signature=base64.b64decode(sigs[0]))
    state = str(body.get("status", "pending" if status == 202 else "")).lower()
    tid = str(body.get("transactionID", ""))
    if state in ("rejected", "expired", "pending") or tid:
        return HashResult(state or "pending", transaction_id=tid)
    raise SigningError("remote signer answer has neither signatures nor a transaction")


def parse_certificates(body: Any) -> list[bytes]:
    try:
        certs = [base64.b64decode(c) for c in body["cert"]["certificates"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise SigningError("remote signer's credentials/info answer has no certificates") from exc
    if not certs:
        raise SigningError("remote signer returned an empty certificate chain")
    return certs


class RemoteSigner:
    """One remote credential. The chain is fetched once and cached."""

    def __init__(self, ks: SigningKeySettings, session: aiohttp.ClientSession, *, timeout: float) -> None:
        self.alias = ks.alias
        self._base = ks.url.rstrip("/")
        self._credential = ks.credential_id
        self._secret = ks.client_secret
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._chain: list[bytes] | None = None

    async def certificates(self) -> list[bytes]:
        """Signer certificate first, then its chain; raises SigningUnavailable/SigningError."""
        if self._chain is None:
            body = await self._post("/csc/v2/credentials/info",
                                    {"credentialID": self._credential, "certificates": "chain"}, "credentials_info")
            self._chain = parse_certificates(body[1])
        return self._chain

    async def sign_hash(self, digest: bytes, client_data: str, callback_url: str = "") -> HashResult:
        status, body = await self._post("/csc/v2/signatures/signHash",
                                        sign_hash_body(self._credential, digest, client_data, callback_url),
                                        "sign_hash")
        return parse_hash_result(status, body)

    async def status(self, transaction_id: str) -> HashResult:
        status, body = await self._post("/csc/v2/signatures/status", {"transactionID": transaction_id},
                                        "signature_status")
        return parse_hash_result(status, body)

    async def _post(self, path: str, body: dict[str, Any], operation: str) -> tuple[int, Any]:
        """POST JSON; ``operation`` names the call for the session's trace hooks (the metrics' label)."""
        headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else {}
        try:
            async with self._session.post(self._base + path, json=body, headers=headers, timeout=self._timeout,
                                          trace_request_ctx={"operation": operation}) as resp:
                if resp.status >= 500 or resp.status == 429:
                    raise SigningUnavailable(f"remote signer answered HTTP {resp.status}",
                                             code="remote_signer_unavailable")
                if resp.status >= 400:
                    raise SigningError(f"remote signer refused the request (HTTP {resp.status})")
                return resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SigningUnavailable(f"remote signer unreachable: {type(exc).__name__}",
                                     code="remote_signer_unavailable") from exc
