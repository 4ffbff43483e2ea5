"""Provincial one-stop system adapter: the REST delivery of dossiers pulled from the portal.

``envelope.py`` (pure body, headers and answer classes), ``transport.py`` (one ``send()``),
``client.py`` (:class:`ProvincialClient`), ``errors.py`` (the error tree).
"""

from adapters.provincial_system.client import ProvincialClient

__all__ = ["ProvincialClient"]
