"""Every metric family the gateway exports, defined in this one module (documented in docs/metrics.md).

Names follow Prometheus conventions: a ``dvcgw_`` prefix, ``_total`` counters, base units
(``_seconds``), bounded label sets. No label ever carries a dossier code or personal data: labels
are outcome classes, operations, states, fields, route templates, key aliases and TSA URLs from
the configuration. Each gateway instance builds one :class:`Metrics` on its own
``CollectorRegistry`` (so tests and several apps in one process never collide) and passes it to
whoever records. The families of optional parts register only where the part runs, on the same
registry: :class:`SigningMetrics` (where ``[signing]`` is configured) and :class:`KafkaMetrics`
(the Kafka queue backend). The 766 indicator families (``dvcgw_kpi766_*``) are provided by
``monitoring/kpi``.

``tests/monitoring/test_metrics_catalogue.py`` fails when this module and docs/metrics.md drift
apart; ``tests/monitoring/test_promtool.py`` lints a live scrape with ``promtool check metrics``.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from queues import jobs
from queues.api import DeliveryState, EventKind, OutcomeClass, QueueStats

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIGNING_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: accepted → delivered: from a fast portal's 100 ms to a day-long outage
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
               7200.0, 14400.0, 43200.0, 86400.0)

PORTAL = "portal"
PROVINCIAL = "provincial"
PAYMENT = "payment"
#: the ``counterpart`` label's values
COUNTERPARTS = (PORTAL, "tsa", "remote_signer", PROVINCIAL, PAYMENT)
#: ``dvcgw_deliveries_total{counterpart="provincial"}``: its one operation and its outcome classes
PROVINCIAL_OPERATION = "dossier"
PROVINCIAL_OUTCOMES = ("ok", "exists", "rejected", "throttled", "retryable")
#: the ``result`` label of ``dvcgw_inbound_dossiers_total``
INBOUND_RESULTS = ("queued", "unchanged", "invalid")
PULL_RESULTS = ("ok", "failed")
#: ``dvcgw_payments_total{outcome}``: a transaction created (INIT "0"), refused by INIT, INIT's
#: outcome unknown (both that-bai), then paid, failed or expired (het-han)
PAYMENT_OUTCOMES = ("initiated", "init_refused", "init_unknown", "paid", "failed", "expired")
#: ``dvcgw_payment_callbacks_total{result}``: what the CONFIRM callback got
PAYMENT_CALLBACK_RESULTS = ("accepted", "duplicate", "malformed", "bad_checksum", "wrong_partner",
                            "unknown_reference", "amount_mismatch")
#: ``dvcgw_payment_reconciliations_total{result}``: what one QUERY of a pending transaction concluded
PAYMENT_RECONCILE_RESULTS = ("paid", "failed", "pending", "expired", "amount_mismatch", "error")
#: the ``operation`` label of ``dvcgw_deliveries_total``
DELIVERY_OPERATIONS = ("create", "update", "progress")
#: the ``kind`` and ``result`` labels of ``dvcgw_auth_total``
AUTH_KINDS = ("login", "token", "refresh")
AUTH_RESULTS = ("ok", "failed")
#: the reasons a dead letter has in practice (a business rejection, "exists", retries given up);
#: always exported, 0 when there is none, so alerts see a series
DEAD_REASONS = (OutcomeClass.REJECTED.value, OutcomeClass.EXISTS.value, OutcomeClass.RETRYABLE.value)
PAUSE_REASONS = ("auth_failed", "forbidden")
#: request methods counted by name in ``dvcgw_http_requests_total``; any other is ``other``
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
#: the ``grant`` label of ``dvcgw_access_refusals_total`` (the grants of gateway/auth.py)
ACCESS_GRANTS = ("units", "procedures", "signing_keys", "authorities", "operator")
#: the ``limit`` label of ``dvcgw_limit_refusals_total`` (gateway/limits.py)
LIMIT_KINDS = ("rate", "concurrency", "body_size", "json_depth")

# No ``*_created`` series beside every counter and histogram: in the text format each is one more
# gauge series per child that Prometheus stores and nobody queries. A process-wide setting of
# prometheus_client; this process serves one exposition, ours.
disable_created_metrics()  # type: ignore[no-untyped-call]


def status_class(status: int | None) -> str:
    """The ``status`` label of an HTTP answer: ``2xx``, ``4xx``, ``5xx`` …, or ``error`` when none came."""
    return "error" if status is None else f"{status // 100}xx"


def build_version() -> str:
    """The installed distribution's version (``unknown`` when run from an uninstalled tree)."""
    try:
        return metadata.version("dvc-gateway")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """The always-present metric families of one gateway instance, on one registry."""

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """One sample's value (tests, health checks)."""
        return self.registry.get_sample_value(name, labels or {})

    def __init__(self, registry: CollectorRegistry | None = None, *, started_at: float | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._sync_families()
        self._counterpart_families()
        self._payment_families()
        self._process_families(time.time() if started_at is None else started_at)
        self._inbound_families()
        self._access_families()
        self._http_children: dict[tuple[str, str, str], Any] = {}  # labels() is not free on the request path
        self._lag_children = {kind.value: self.sync_lag.labels(kind.value) for kind in EventKind}
        self._dead_seen: set[str] = set(DEAD_REASONS)
        self._jobs_seen: set[tuple[str, str]] = set()
        self._initialise_children()

    # ------------------------------------------------------------------ definitions

    def _sync_families(self) -> None:
        r = self.registry
        self.events_accepted = Counter(
            "dvcgw_events_accepted_total", "Events accepted from agencies (202 sent), by kind", ["kind"], registry=r)
        self.deliveries = Counter(
            "dvcgw_deliveries_total",
            "Delivery attempts by counterpart, operation (create, update, progress) and outcome class "
            "(ok, exists, not_found, rejected, auth_expired, auth_failed, forbidden, throttled, retryable)",
            ["counterpart", "operation", "outcome"], registry=r)
        self.sync_lag = Histogram(
            "dvcgw_sync_lag_seconds", "Time from an event's acceptance (202) to the portal accepting it, by kind",
            ["kind"], buckets=LAG_BUCKETS, registry=r)
        self.queue_depth = Gauge("dvcgw_queue_dossiers", "Dossiers per delivery state", ["state"], registry=r)
        self.oldest_pending_age = Gauge(
            "dvcgw_oldest_pending_age_seconds", "Age of the oldest event not yet delivered", registry=r)
        self.dead_letters = Gauge(
            "dvcgw_dead_letters", "Dead letters waiting for an operator, by the outcome class of their error",
            ["reason"], registry=r)
        self.accept_latency = Histogram(
            "dvcgw_accept_duration_seconds", "Time from request to durable 202", buckets=LATENCY_BUCKETS, registry=r)
        self.unusual_transitions = Counter(
            "dvcgw_unusual_transitions_total",
            "Dossier state transitions outside the normal table (forwarded unless enforce = true)",
            ["from", "to"], registry=r)
        self.truncated_fields = Counter(
            "dvcgw_truncated_fields_total", "Texts truncated to the portal's limits, by field", ["field"], registry=r)
        self.http_requests = Counter(
            "dvcgw_http_requests_total",
            "HTTP requests served, by route template (never the raw path), method and status class",
            ["route", "method", "status"], registry=r)
        self.jobs = Gauge(
            "dvcgw_jobs", "Durable jobs (provincial delivery, e-receipts) by topic and state (pending, done, dead)",
            ["topic", "state"], registry=r)
        self.job_runs = Counter(
            "dvcgw_job_runs_total", "Job runs by topic and outcome (ok, retry, dead)", ["topic", "outcome"], registry=r)
        self.oldest_job_age = Gauge(
            "dvcgw_oldest_pending_job_age_seconds", "Age of the oldest durable job not yet done", registry=r)

    def _counterpart_families(self) -> None:
        r = self.registry
        self.counterpart_latency = Histogram(
            "dvcgw_counterpart_request_duration_seconds",
            "Outbound HTTP request latency (until the answer's head arrived) by counterpart, operation and "
            "status class (error: no answer)",
            ["counterpart", "operation", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.circuit_state = Gauge(
            "dvcgw_circuit_state", "Circuit breaker per counterpart: 0 closed, 1 half-open, 2 open",
            ["counterpart"], registry=r)
        self.delivery_paused = Gauge(
            "dvcgw_portal_delivery_paused",
            "1 while delivery is paused because credentials or subscription were refused", ["reason"], registry=r)
        self.auth = Counter(
            "dvcgw_auth_total", "Credential fetches (login, token, refresh) by counterpart and result",
            ["counterpart", "kind", "result"], registry=r)
        self.throttled = Counter(
            "dvcgw_throttled_total", "HTTP 429 answers by counterpart", ["counterpart"], registry=r)
        self.throttled_wait = Counter(
            "dvcgw_throttled_wait_seconds_total",
            "Seconds delivery was put off because of 429 answers (Retry-After, else the retry ladder)",
            ["counterpart"], registry=r)

    def _access_families(self) -> None:
        r = self.registry
        self.access_refusals = Counter(
            "dvcgw_access_refusals_total", "403 answers to an agency outside one of its grants, by agency code "
            "and grant", ["agency", "grant"], registry=r)
        self.limit_refusals = Counter(
            "dvcgw_limit_refusals_total", "Agency requests refused for a limit (429 rate and concurrency, "
            "413 body size, 400 JSON depth), by agency code and limit", ["agency", "limit"], registry=r)

    def init_agencies(self, codes: Iterable[str]) -> None:
        """The access series of every configured agency exist from the start, at 0 (the label's values
        are the configured agency codes: bounded)."""
        for code in codes:
            for grant in ACCESS_GRANTS:
                self.access_refusals.labels(code, grant)
            for limit in LIMIT_KINDS:
                self.limit_refusals.labels(code, limit)

    def access_refused(self, agency: str, grant: str) -> None:
        self.access_refusals.labels(agency, grant).inc()

    def limit_refused(self, agency: str, limit: str) -> None:
        self.limit_refusals.labels(agency, limit).inc()

    def _payment_families(self) -> None:
        r = self.registry
        self.payments = Counter(
            "dvcgw_payments_total", "Payment transactions by outcome (initiated, init_refused, init_unknown, paid, "
            "failed, expired)", ["outcome"], registry=r)
        self.payment_callbacks = Counter(
            "dvcgw_payment_callbacks_total", "CONFIRM callbacks from the payment platform by result", ["result"],
            registry=r)
        self.payment_reconciliations = Counter(
            "dvcgw_payment_reconciliations_total", "QUERY reconciliations of pending payments by result", ["result"],
            registry=r)

    def _process_families(self, started_at: float) -> None:
        r = self.registry
        self.build_info = Gauge(
            "dvcgw_build_info", "Always 1; the gateway's version and the Python it runs on", ["version", "python"],
            registry=r)
        self.build_info.labels(build_version(), platform.python_version()).set(1)
        self.start_time = Gauge(
            "dvcgw_start_time_seconds", "When this gateway instance started (Unix time)", registry=r)
        self.start_time.set(started_at)
        self.kpi_facts = Counter(
            "dvcgw_kpi_facts_seconds_total",
            "Seconds the event loop spent reading the 766 indicators' facts out of delivered events "
            "(monitoring/kpi/facts.py), added at each write of the indicators' file; 0 with [kpi] enabled = false",
            registry=r)
        # process_* and python_*: the collectors prometheus_client puts on its global registry, on ours
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)

    def _inbound_families(self) -> None:
        """The procedure catalogue and the inbound dossiers (issue 15 §1, §2; docs/inbound.md)."""
        r = self.registry
        self.catalogue_procedures = Gauge(
            "dvcgw_catalogue_procedures", "Procedures in the catalogue held (0 until the first pull)", registry=r)
        self.catalogue_age = Gauge(
            "dvcgw_catalogue_age_seconds", "Seconds since the catalogue held was pulled (+Inf: never)", registry=r)
        self.catalogue_age.set(float("inf"))
        self.catalogue_pulls = Counter(
            "dvcgw_catalogue_pulls_total", "Catalogue pulls (LayDanhSachTTHC + LayThuTuc) by result",
            ["result"], registry=r)
        self.catalogue_unknown = Counter(
            "dvcgw_catalogue_unknown_procedures_total",
            "Snapshots whose MaTTHC is not in the catalogue, by what was done (accepted: warn, refused: reject)",
            ["action"], registry=r)
        self.inbound_pulls = Counter(
            "dvcgw_inbound_pulls_total", "Calls of the inbound dossier pull service by result", ["result"], registry=r)
        self.inbound_dossiers = Counter(
            "dvcgw_inbound_dossiers_total",
            "Dossiers pulled from the portal: queued for the provincial system (new or changed), unchanged "
            "(already queued as they are), invalid (no MaHoSo)", ["result"], registry=r)
        self.inbound_unknown_states = Counter(
            "dvcgw_inbound_unknown_states_total",
            "Pulled dossiers whose textual DVCQG state maps to no code (spec §7.9); one fixed label value",
            ["state"], registry=r)

    def _initialise_children(self) -> None:
        """Series with a bounded label set exist from the start, at 0, so that ``rate()`` and alerts
        see them before the first event (Prometheus' advice on missing series)."""
        for event_kind in EventKind:
            self.events_accepted.labels(event_kind.value)
        for op in DELIVERY_OPERATIONS:
            for cls in OutcomeClass:
                self.deliveries.labels(PORTAL, op, cls.value)
        for state in DeliveryState:
            self.queue_depth.labels(state.value)
        for reason in DEAD_REASONS:
            self.dead_letters.labels(reason)
        self.circuit_state.labels(PORTAL).set(0)
        for reason in PAUSE_REASONS:
            self.delivery_paused.labels(reason).set(0)
        for kind in AUTH_KINDS:
            for result in AUTH_RESULTS:
                self.auth.labels(PORTAL, kind, result)
        self.throttled.labels(PORTAL)
        self.throttled_wait.labels(PORTAL)
        self._initialise_payments()
        for topic in jobs.TOPICS:
            for job_state in jobs.STATES:
                self.jobs.labels(topic, job_state)
            for outcome in jobs.RUN_OUTCOMES:
                self.job_runs.labels(topic, outcome)
        self._jobs_seen |= {(t, s) for t in jobs.TOPICS for s in jobs.STATES}
        self._initialise_inbound_children()

    def _initialise_inbound_children(self) -> None:
        for outcome in PROVINCIAL_OUTCOMES:
            self.deliveries.labels(PROVINCIAL, PROVINCIAL_OPERATION, outcome)
        for result in PULL_RESULTS:
            self.catalogue_pulls.labels(result)
            self.inbound_pulls.labels(result)
        for action in ("accepted", "refused"):
            self.catalogue_unknown.labels(action)
        for result in INBOUND_RESULTS:
            self.inbound_dossiers.labels(result)
        self.inbound_unknown_states.labels("unknown")

    def _initialise_payments(self) -> None:
        for outcome in PAYMENT_OUTCOMES:
            self.payments.labels(outcome)
        for result in PAYMENT_CALLBACK_RESULTS:
            self.payment_callbacks.labels(result)
        for result in PAYMENT_RECONCILE_RESULTS:
            self.payment_reconciliations.labels(result)

    # ------------------------------------------------------------------ recording hooks

    def counterpart_call(self, counterpart: str, operation: str, status: int | None, seconds: float) -> None:
        """One outbound HTTP request finished (``status`` None: no answer). The hook of
        :func:`monitoring.tracing.trace_config`; a 429 also counts on ``dvcgw_throttled_total``."""
        self.counterpart_latency.labels(counterpart, operation, status_class(status)).observe(max(seconds, 0.0))
        if status == 429:
            self.throttled.labels(counterpart).inc()

    def delivered(self, operation: str, outcome: str, n: int = 1) -> None:
        """``n`` delivery attempts to the portal with this outcome class."""
        self.deliveries.labels(PORTAL, operation, outcome).inc(n)

    def observe_lag(self, kind: str, seconds: float) -> None:
        """One event of ``kind`` (snapshot, progress) reached the portal ``seconds`` after its 202."""
        self._lag_children[kind].observe(max(seconds, 0.0))

    def auth_result(self, counterpart: str, kind: str, ok: bool) -> None:
        """One credential fetch: ``kind`` login, token or refresh."""
        self.auth.labels(counterpart, kind, "ok" if ok else "failed").inc()

    def http_request(self, route: str | None, method: str, status: int) -> None:
        """One request served: ``route`` is the matched template, None when nothing matched."""
        key = (route or UNMATCHED_ROUTE, method if method in HTTP_METHODS else "other", status_class(status))
        child = self._http_children.get(key)
        if child is None:
            child = self._http_children[key] = self.http_requests.labels(*key)
        child.inc()

    def publish_queue(self, stats: QueueStats, now: float) -> None:
        """The queue's gauges from one census (``/metrics`` takes one per scrape)."""
        for state, n in stats.by_state.items():
            self.queue_depth.labels(state).set(n)
        oldest = stats.oldest_pending_at
        self.oldest_pending_age.set(max(now - oldest, 0.0) if oldest else 0.0)
        self.publish_dead_letters(stats.dead_letters_by_reason)

    def publish_jobs(self, counts: Mapping[tuple[str, str], int], oldest: float | None, now: float) -> None:
        """The jobs' gauges from one census: every (topic, state) seen so far, 0 when gone."""
        for (topic, state), n in counts.items():
            self.jobs.labels(topic, state).set(n)
        for labels in list(self._jobs_seen - set(counts)):
            self.jobs.labels(*labels).set(0)
        self._jobs_seen |= set(counts)
        self.oldest_job_age.set(max(now - oldest, 0.0) if oldest else 0.0)

    def job_run(self, topic: str, outcome: str) -> None:
        """One job run: ``outcome`` ok, retry or dead."""
        self.job_runs.labels(topic, outcome).inc()

    def publish_dead_letters(self, by_reason: Mapping[str, int]) -> None:
        """Dead letters per reason; a reason seen before and now gone drops to 0 (never stale)."""
        self._dead_seen.update(by_reason)
        for reason in sorted(self._dead_seen):
            self.dead_letters.labels(reason).set(by_reason.get(reason, 0))


class AuditMetrics:
    """The message log's families (audit/), on the instance's registry, where ``[audit] bodies`` is
    not "off". Labels: record kinds and seal outcome classes only."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.records = Counter(
            "dvcgw_audit_records_total", "Records written to the message log, by kind (agency, counterpart, "
            "callback)", ["kind"], registry=r)
        self.last_seal = Gauge(
            "dvcgw_audit_last_seal_timestamp_seconds", "When the whole message log was last covered by a signed "
            "and time-stamped seal (Unix time; set at start-up)", registry=r)
        self.seals = Counter(
            "dvcgw_audit_seal_attempts_total", "Sealing rounds by outcome (ok, sign_failed, stamp_failed)",
            ["outcome"], registry=r)
        self.unsealed = Gauge(
            "dvcgw_audit_unsealed_records", "Records not yet covered by a time-stamped seal", registry=r)
        self.halted = Gauge(
            "dvcgw_audit_halted", "1 while agency requests are refused because the log went unsealed for "
            "[audit] halt_after_unsealed", registry=r)
        self.write_duration = Histogram(
            "dvcgw_audit_write_duration_seconds", "Time to chain and commit one batch of records",
            buckets=LATENCY_BUCKETS, registry=r)


class SigningMetrics:
    """The signing service's families, on the instance's registry (only where signing is configured).

    Labels carry key aliases, levels, outcome classes and TSA URLs from the configuration only:
    never document content or personal data. ``calls`` receives the outbound HTTP requests the
    signing workers made (TSA) for ``dvcgw_counterpart_request_duration_seconds``.
    """

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.calls = metrics
        self.signatures = Counter(
            "dvcgw_signatures_total",
            "Signature requests by key alias, requested level and outcome "
            "(ok, downgraded, pending, rejected, unavailable, error)",
            ["key", "level", "outcome"], registry=r)
        self.signing_duration = Histogram(
            "dvcgw_signing_duration_seconds", "Time to produce a signed PDF (local keys)",
            buckets=SIGNING_BUCKETS, registry=r)
        self.tsa_duration = Histogram(
            "dvcgw_tsa_request_duration_seconds", "Time-stamp request latency per TSA URL",
            ["url"], buckets=SIGNING_BUCKETS, registry=r)
        self.tsa_failures = Counter(
            "dvcgw_tsa_failures_total", "Failed time-stamp requests per TSA URL", ["url"], registry=r)
        self.tsa_available = Gauge(
            "dvcgw_tsa_available", "1 if the last time-stamp request to this TSA succeeded, 0 if it failed",
            ["url"], registry=r)
        self.validations = Counter(
            "dvcgw_validations_total", "Validated signatures by ETSI main indication", ["indication"], registry=r)
        self.cert_expiry = Gauge(
            "dvcgw_signing_cert_expiry_seconds",
            "Seconds until each signing key's certificate expires (negative once it has)", ["key"], registry=r)


class CertificationMetrics:
    """E-certification of copies (signing/certification): labels are configured authority codes and
    outcome classes only, never a requester, a certifier or a document name."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.certifications = Counter(
            "dvcgw_certifications_total",
            "Certification numbers by authority and outcome (issued, voided, revoked)",
            ["authority", "outcome"], registry=r)
        self.duration = Histogram(
            "dvcgw_certification_duration_seconds",
            "Time to certify a copy end to end (assemble, reserve, stamp, sign, check, record)",
            buckets=SIGNING_BUCKETS, registry=r)
        self.active_authorities = Gauge(
            "dvcgw_certification_active_authorities",
            "Authorities with an open electronic book and at least one valid certification "
            "(evidence for the 766 ELECTRONIC_CERTIFIED_COPY indicator)", registry=r)


class KafkaMetrics:
    """The Kafka queue backend's families on one instance's registry.

    Labels are topics, partitions and ladder steps only: never a dossier code. Dead letters are
    counted by ``dvcgw_dead_letters{reason}`` for every backend.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.consumer_lag = Gauge(
            "dvcgw_kafka_consumer_lag", "Records not yet consumed, per owned partition",
            ["topic", "partition"], registry=r)
        self.ladder_depth = Gauge(
            "dvcgw_kafka_ladder_depth", "Events waiting in each retry-ladder step (owned partitions)",
            ["step"], registry=r)
        self.produce_latency = Histogram(
            "dvcgw_kafka_produce_duration_seconds", "Time until a produce is acknowledged (acks=all)",
            ["topic_kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.commit_latency = Histogram(
            "dvcgw_kafka_commit_duration_seconds", "Consumer offset commit latency",
            buckets=LATENCY_BUCKETS, registry=r)
        self.rebalances = Counter(
            "dvcgw_kafka_rebalances_total", "Partition assignments received by this instance's consumer",
            ["kind"], registry=r)
        self._produce_by_kind: dict[str, Any] = {}  # produce_latency's child per topic kind (labels() is not free)

    def observe_produce(self, kind: str, seconds: float) -> None:
        """One acknowledged produce of ``kind`` (outbound, retry, state, watermark, dlq, control)
        on the produce-latency histogram: the hook :class:`~queues.kafka_produce.Producing` calls."""
        child = self._produce_by_kind.get(kind)
        if child is None:
            child = self._produce_by_kind[kind] = self.produce_latency.labels(kind)
        child.observe(seconds)

