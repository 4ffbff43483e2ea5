"""The signing service's metric families, on the injected registry.

Labels carry key aliases, levels, outcome classes and TSA URLs only: never document content or
personal data.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SIGNING_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class SigningMetrics:
    """Metric families of one signing service."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.signatures = Counter(
            "dvcgw_signatures_total",
            "Signature requests by key alias, requested level and outcome "
            "(ok, downgraded, pending, rejected, unavailable, error)",
            ["key", "level", "outcome"], registry=r,
        )
        self.signing_duration = Histogram(
            "dvcgw_signing_duration_seconds", "Time to produce a signed PDF (local keys)",
            buckets=SIGNING_BUCKETS, registry=r,
        )
        self.tsa_duration = Histogram(
            "dvcgw_tsa_request_duration_seconds", "Time-stamp request latency per TSA URL",
            ["url"], buckets=SIGNING_BUCKETS, registry=r,
        )
        self.tsa_failures = Counter(
            "dvcgw_tsa_failures_total", "Failed time-stamp requests per TSA URL", ["url"], registry=r,
        )
        self.validations = Counter(
            "dvcgw_validations_total", "Validated signatures by ETSI main indication", ["indication"],
            registry=r,
        )
        self.cert_expiry_days = Gauge(
            "dvcgw_signing_cert_expiry_days", "Days until each signing key's certificate expires",
            ["key"], registry=r,
        )
