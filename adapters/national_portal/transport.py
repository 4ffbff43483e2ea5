"""The one place the national-portal adapter touches the network: :meth:`Transport.send`.

``send`` POSTs one request and returns the raw status, headers and body. It never interprets the
body. Foreign exceptions (aiohttp, timeouts) are translated here, once, into
:class:`~core.errors.PortalUnavailable` ``from`` the original.

Connection errors are retried quickly inside the call (``connect_retries`` extra attempts, waits of
a few tens of milliseconds). Which errors count depends on ``idempotent``:

* idempotent requests retry any connection error except timeouts (reset, refused, disconnected);
* non-idempotent ones (progress items) retry only a connection that was never established, so a
  request the portal may already have processed is not sent twice from here.

Timeouts and HTTP statuses (5xx included) are never retried here: that is the queue's job.
Each attempt's POST carries ``trace_request_ctx={"operation": service}``: the session's trace hooks
(:func:`monitoring.tracing.trace_config`, attached where the session is made) observe its latency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from core.errors import PortalUnavailable

#: A JSON request body: one object (the service envelope) or a bare array (the adapter variant, §3.4)
JsonBody = Mapping[str, Any] | Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class RawReply:
    """What came back: HTTP status, headers (case-insensitive mapping) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def _retryable(idempotent: bool) -> retry_if_exception:
    def predicate(exc: BaseException) -> bool:
        if isinstance(exc, aiohttp.ClientConnectorError):
            return not isinstance(exc, aiohttp.ClientSSLError)
        if isinstance(exc, TimeoutError):
            return False
        return idempotent and isinstance(exc, aiohttp.ClientConnectionError)

    return retry_if_exception(predicate)


class Transport:
    """POSTs to the portal over an injected :class:`aiohttp.ClientSession`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout: float,
        connect_retries: int,
        retry_wait: float = 0.025,
    ) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._attempts = 1 + max(0, connect_retries)
        self._retry_wait = retry_wait

    async def send(
        self,
        url: str,
        *,
        service: str,
        headers: Mapping[str, str],
        json_body: JsonBody | None = None,
        form: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> RawReply:
        """POST ``json_body`` (UTF-8 JSON, an object or an array) or ``form`` to ``url``; raises only
        PortalUnavailable."""
        data, all_headers = _encode(headers, json_body, form)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._retry_wait, max=4 * self._retry_wait),
            retry=_retryable(idempotent),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(url, service, all_headers, data)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PortalUnavailable(f"{service}: {type(exc).__name__} talking to the portal") from exc
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    async def _once(self, url: str, service: str, headers: Mapping[str, str], data: bytes) -> RawReply:
        async with self._session.post(
            url, data=data, headers=headers, timeout=self._timeout, allow_redirects=False,
            trace_request_ctx={"operation": service},
        ) as resp:
            body = await resp.read()
            return RawReply(status=resp.status, headers=resp.headers, body=body)


def _encode(
    headers: Mapping[str, str], json_body: JsonBody | None, form: Mapping[str, str] | None
) -> tuple[bytes, dict[str, str]]:
    out = dict(headers)
    if form is not None:
        out["Content-Type"] = "application/x-www-form-urlencoded"
        return urlencode(dict(form)).encode("ascii"), out
    out["Content-Type"] = "application/json; charset=utf-8"
    # UTF-8, not \u-escaped (as json.dumps(ensure_ascii=False))
    return orjson.dumps({} if json_body is None else json_body), out
