"""Every metric the gateway exports, defined in one place.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` base units). No label ever
carries a dossier code or personal data: labels are outcome classes, services, states, fields.
Each gateway instance builds one :class:`Metrics` on its own ``CollectorRegistry`` (so tests and
several apps in one process never collide) and passes it to whoever records.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The metric families of one gateway instance, on one registry."""

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """One sample's value (tests, health checks)."""
        return self.registry.get_sample_value(name, labels or {})

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_accepted = Counter(
            "dvcgw_events_accepted_total", "Events accepted from agencies (202 sent)", ["kind"], registry=r
        )
        self.deliveries = Counter(
            "dvcgw_deliveries_total",
            "Portal delivery attempts by outcome class (ok, exists, not_found, rejected, auth_expired, "
            "auth_failed, forbidden, throttled, retryable) and kind",
            ["outcome", "kind"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "dvcgw_queue_dossiers", "Dossiers per delivery state", ["state"], registry=r
        )
        self.oldest_pending_age = Gauge(
            "dvcgw_oldest_pending_age_seconds", "Age of the oldest event not yet delivered", registry=r
        )
        self.dead_letters = Gauge("dvcgw_dead_letters", "Dead letters waiting for an operator", registry=r)
        self.portal_latency = Histogram(
            "dvcgw_portal_request_duration_seconds",
            "National-portal call latency by service and HTTP status class",
            ["service", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.circuit_state = Gauge(
            "dvcgw_portal_circuit_state", "Portal circuit: 0 closed, 1 half-open, 2 open", registry=r
        )
        self.delivery_paused = Gauge(
            "dvcgw_portal_delivery_paused",
            "1 while delivery is paused because credentials or subscription were refused",
            ["reason"],
            registry=r,
        )
        self.logins = Counter(
            "dvcgw_portal_logins_total", "Portal logins and token fetches by result", ["kind", "result"], registry=r
        )
        self.truncated_fields = Counter(
            "dvcgw_truncated_fields_total", "Texts truncated to the portal's limits", ["field"], registry=r
        )
        self.unusual_transitions = Counter(
            "dvcqg_unusual_transition_total",
            "State transitions outside the normal table (forwarded unless enforce = true)",
            ["from", "to"],
            registry=r,
        )
        self.accept_latency = Histogram(
            "dvcgw_accept_duration_seconds",
            "Time from request to durable 202",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
