"""The listener's TLS context (``[server] tls_cert``, ``tls_key``, ``client_ca``, ``client_cert``).

With ``client_cert = "optional"`` or ``"required"`` the handshake asks for a client certificate
and verifies it against ``client_ca`` (chain, validity dates): an expired certificate or one from
another CA fails the handshake itself, before any HTTP. A verified certificate is mapped to an
agency by gateway/auth.py. TLS 1.2 is the oldest version spoken.
"""

from __future__ import annotations

import ssl

from config.schema import ServerSettings
from core.errors import ConfigError

_VERIFY = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def server_context(server: ServerSettings) -> ssl.SSLContext | None:
    """The listener's context, None for plain HTTP; raises ConfigError naming the setting whose file
    cannot be used (a key that is not the certificate's, a file that is not PEM)."""
    if not server.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(server.tls_cert, server.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError("server.tls_key", f"cannot use tls_cert {server.tls_cert!r} with tls_key "
                                            f"{server.tls_key!r}: {exc}") from exc
    if server.client_ca:
        try:
            context.load_verify_locations(cafile=server.client_ca)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError("server.client_ca", f"cannot read CA certificates from {server.client_ca!r}: "
                                                  f"{exc}") from exc
    context.verify_mode = _VERIFY[server.client_cert]
    return context
