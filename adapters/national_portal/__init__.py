"""National-portal (DVCQG) adapter: envelopes (pure), one transport ``send()``, the client.

The sync engine uses :class:`PortalClient` only; errors come from :mod:`gateway.errors`.
"""

from adapters.national_portal.client import PortalClient

__all__ = ["PortalClient"]
