"""The one place the payment-platform adapter touches the network: :meth:`Transport.send`.

``send`` POSTs one JSON message (UTF-8, ``application/json; charset=utf-8``) and returns the body of
a 200 answer. Any other status, a timeout or a connection error becomes
:class:`~adapters.payment_platform.errors.PaymentUnavailable` ``from`` the original: nothing is
retried here (INIT is not idempotent: a repeat makes a second transaction). When an access token is
configured it is sent as ``Authorization: Bearer`` (TH does so; spec §1). Redirects are not followed.
Each POST carries ``trace_request_ctx={"operation": <LoaiBanTin>}`` for the session's latency hooks
(:func:`monitoring.tracing.trace_config`, counterpart ``payment``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from adapters.payment_platform.errors import PaymentUnavailable

#: a reply larger than this is refused (a receipt PDF is some tens of kB)
MAX_REPLY_BYTES = 16 * 1024 * 1024


class Transport:
    """POSTs to the platform over an injected :class:`aiohttp.ClientSession`."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float, access_token: str = "") -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = {"Content-Type": "application/json; charset=utf-8"}
        if access_token:
            self._headers["Authorization"] = f"Bearer {access_token}"

    async def send(self, url: str, message: Mapping[str, Any], *, operation: str) -> bytes:
        """POST ``message``; the body of a 200 answer. Raises only PaymentUnavailable."""
        try:
            async with self._session.post(url, data=orjson.dumps(message), headers=self._headers,
                                          timeout=self._timeout, allow_redirects=False,
                                          trace_request_ctx={"operation": operation}) as resp:
                if resp.status != 200:
                    raise PaymentUnavailable(f"{operation}: HTTP {resp.status} from the payment platform",
                                             operation=operation, retry_after=_retry_after(resp.headers))
                return await _read(resp, operation)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PaymentUnavailable(f"{operation}: {type(exc).__name__} talking to the payment platform",
                                     operation=operation) from exc


async def _read(resp: aiohttp.ClientResponse, operation: str) -> bytes:
    if (resp.content_length or 0) > MAX_REPLY_BYTES:
        raise PaymentUnavailable(f"{operation}: the reply is over {MAX_REPLY_BYTES} bytes", operation=operation)
    body = await resp.content.read(MAX_REPLY_BYTES + 1)
    if len(body) > MAX_REPLY_BYTES:
        raise PaymentUnavailable(f"{operation}: the reply is over {MAX_REPLY_BYTES} bytes", operation=operation)
    return body


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds: 1 to 10 ASCII digits, else None (``str.isdigit()`` took "²", which
    ``float()`` refuses: a ValueError out of the adapter)."""
    value = headers.get("Retry-After", "")
    return float(value) if value.isascii() and value.isdigit() and len(value) <= 10 else None
