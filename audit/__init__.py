"""The message log (issue 17, docs/audit.md): a hash-chained, sealed and time-stamped record of
every exchange the gateway takes part in. Never imports ``gateway``: the application hooks
:class:`~audit.log.AuditLog` into its middleware chain and its counterpart sessions."""
