"""The national payment platform (spec ``payment-platform.md``): the gateway is the partner that
creates transactions (INIT), asks about them (QUERY), fetches the receipt (GET_BILL) and receives
the platform's CONFIRM callback.

``envelope`` builds and parses messages and computes the ``MaXacThuc`` checksum (pure, no I/O);
``transport`` is the one ``send()``; ``client`` the three outbound operations; ``errors`` the error
tree; ``store`` the payments' own SQLite file; ``service`` the transaction state machine, the
callback, reconciliation and the ``on_paid`` hooks.
"""
