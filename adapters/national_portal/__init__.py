"""National-portal (DVCQG) adapter: envelopes (pure), one transport ``send()``, the client.

The sync engine uses :class:`PortalClient` only; errors come from :mod:`core.errors`.
"""

from adapters.national_portal.client import PortalClient

__all__ = ["PortalClient"]
