"""The one place the provincial-system adapter touches the network: :meth:`Transport.send`.

``send`` POSTs one body and returns the status and the raw answer, never interpreting it. Foreign
exceptions (aiohttp, timeouts) are translated here, once, into :class:`ProvincialUnavailable`
``from`` the original. Nothing is retried here: the jobs outbox retries on its ladder. The POST
carries ``trace_request_ctx={"operation": "dossier"}`` for the session's trace hooks
(:func:`monitoring.tracing.trace_config`, counterpart ``provincial``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from adapters.provincial_system.errors import ProvincialUnavailable

OPERATION = "dossier"


@dataclass(frozen=True)
class RawReply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class Transport:
    """POSTs to the provincial system over an injected :class:`aiohttp.ClientSession`."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, url: str, headers: Mapping[str, str], data: bytes) -> RawReply:
        """POST ``data`` to ``url``; raises only ProvincialUnavailable."""
        try:
            async with self._session.post(url, data=data, headers=dict(headers), timeout=self._timeout,
                                          allow_redirects=False, trace_request_ctx={"operation": OPERATION}) as resp:
                return RawReply(resp.status, resp.headers, await resp.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProvincialUnavailable(f"{type(exc).__name__} talking to the provincial system") from exc
