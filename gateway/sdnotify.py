"""systemd's readiness protocol (sd_notify(3)) in a few lines of the standard library.

Under ``Type=notify`` (deploy/dvcgw.service) systemd passes ``$NOTIFY_SOCKET``, an AF_UNIX datagram
socket (a path, or an abstract name written with a leading ``@``), and waits for ``READY=1`` before
it counts the unit as started. The daemon sends ``READY=1`` once the listener accepts and the
application's start-up (store, queue, engine) has finished, and ``STOPPING=1`` when it starts to
drain. Outside systemd the variable is unset and nothing is sent. ``$NOTIFY_SOCKET`` is systemd's
protocol, not a setting, so it is read here and not through config/.

A failed send is logged and otherwise ignored: the daemon serves either way, and systemd's own
start timeout reports a unit that never became ready.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("dvcgw.serve")


def notify(state: str, address: str | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=…"``) to ``address`` (default ``$NOTIFY_SOCKET``).
    Returns whether a datagram was sent; False when there is no socket to send to or the send failed."""
    target = os.environ.get("NOTIFY_SOCKET", "") if address is None else address
    if not target:
        return False
    if target.startswith("@"):
        target = "\0" + target[1:]
    elif not target.startswith("/"):
        log.warning("NOTIFY_SOCKET is neither a path nor an abstract name (@…); systemd not notified")
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("could not notify systemd (%s): %s", state.split("\n", 1)[0], exc.strerror or exc)
        return False
    return True
