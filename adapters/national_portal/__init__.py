"""National-portal (DVCQG) adapter: envelopes (pure), one transport ``send()``, the client.

The sync engine uses :class:`PortalClient` only; errors come from :mod:`core.errors`.
:func:`portal_client` builds the one the settings name: the JSON service API (``transport =
"service"``, spec §2–3) or the province-adapter variant (``"adapter"``, §3.4, :class:`AdapterClient`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp

from adapters.national_portal.adapter_client import AdapterClient
from adapters.national_portal.client import PortalClient
from config.schema import PortalSettings
from monitoring.metrics import Metrics

__all__ = ["AdapterClient", "PortalClient", "portal_client"]


def portal_client(
    settings: PortalSettings,
    session: aiohttp.ClientSession,
    *,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PortalClient:
    """The client of ``[portal] transport``, over the injected session."""
    cls = AdapterClient if settings.transport == "adapter" else PortalClient
    return cls(settings, session, metrics=metrics, clock=clock)
