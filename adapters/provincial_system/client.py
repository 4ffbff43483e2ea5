"""Delivery of one inbound dossier to the provincial one-stop system.

:meth:`ProvincialClient.deliver` posts a body built by :func:`adapters.provincial_system.envelope.body`
and returns ``"ok"`` (taken) or ``"exists"`` (that version was already there: done); it raises only
the errors of :mod:`adapters.provincial_system.errors`: ProvincialThrottled, ProvincialUnavailable
(retry), ProvincialRejected (dead letter). It never logs the dossier.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import aiohttp

from adapters.national_portal.envelope import parse_retry_after
from adapters.provincial_system import envelope
from adapters.provincial_system.envelope import Verdict
from adapters.provincial_system.errors import ProvincialRejected, ProvincialThrottled, ProvincialUnavailable
from adapters.provincial_system.transport import Transport
from config.schema import ProvincialSettings


class ProvincialClient:
    """The provincial system's REST endpoint (``[provincial]``)."""

    def __init__(self, settings: ProvincialSettings, session: aiohttp.ClientSession) -> None:
        self._s = settings
        self._transport = Transport(session, timeout=float(settings.timeout))

    async def deliver(self, payload: Mapping[str, Any]) -> Literal["ok", "exists"]:
        """POST one delivery body; see the module docstring for what it raises."""
        headers = envelope.headers(self._s.auth_header, self._s.auth_value, payload)
        raw = await self._transport.send(self._s.url, headers, envelope.encode(payload))
        judged = envelope.verdict(raw.status, raw.body)
        if judged.verdict is Verdict.OK:
            return "ok"
        if judged.verdict is Verdict.EXISTS:
            return "exists"
        if judged.verdict is Verdict.THROTTLED:
            wait = parse_retry_after(raw.headers.get("Retry-After"), now=time.time())
            raise ProvincialThrottled("the provincial system answered HTTP 429", retry_after=wait)
        if judged.verdict is Verdict.UNAVAILABLE:
            raise ProvincialUnavailable(f"the provincial system answered {judged.message}")
        raise ProvincialRejected(judged.code, judged.message)
