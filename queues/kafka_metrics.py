"""Every metric of the Kafka queue backend, defined in one place (see monitoring/metrics.py for the rest).

Labels are topics, partitions and ladder steps only: never a dossier code.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitoring.metrics import LATENCY_BUCKETS


class KafkaMetrics:
    """The Kafka backend's metric families on one instance's registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.consumer_lag = Gauge(
            "dvcgw_kafka_consumer_lag", "Records not yet consumed, per owned partition",
            ["topic", "partition"], registry=r,
        )
        self.ladder_depth = Gauge(
            "dvcgw_kafka_ladder_depth", "Events waiting in each retry-ladder step (owned partitions)",
            ["step"], registry=r,
        )
        self.dead_letters = Gauge(
            "dvcgw_kafka_dead_letters", "Dead letters in the dead-letter topic not yet replayed", registry=r
        )
        self.produce_latency = Histogram(
            "dvcgw_kafka_produce_duration_seconds", "Time until a produce is acknowledged (acks=all)",
            ["topic_kind"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.commit_latency = Histogram(
            "dvcgw_kafka_commit_duration_seconds", "Consumer offset commit latency",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.rebalances = Counter(
            "dvcgw_kafka_rebalances_total", "Partition assignments received by this instance's consumer",
            ["kind"], registry=r,
        )
        self._produce_by_kind: dict[str, Any] = {}  # produce_latency's child per topic kind (labels() is not free)

    def observe_produce(self, kind: str, seconds: float) -> None:
        """One acknowledged produce of ``kind`` (outbound, retry, state, watermark, dlq, control)
        on the produce-latency histogram: the hook :class:`~queues.kafka_produce.Producing` calls."""
        child = self._produce_by_kind.get(kind)
        if child is None:
            child = self._produce_by_kind[kind] = self.produce_latency.labels(kind)
        child.observe(seconds)
