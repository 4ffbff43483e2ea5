"""The settings tree: frozen dataclasses, one per TOML table. Public contract: see README.

Each ``__post_init__`` raises ``ValueError("key: message")``; the loader turns that into a
:class:`~core.errors.ConfigError` carrying the full dotted key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from config.loader import Duration, load_settings
from core.codes import is_unit_code

_D = Duration
_PROVINCE_CODE = re.compile(r"[A-Z][0-9]{2}")


def _listen_ok(listen: str) -> bool:
    host, sep, port = listen.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 <= int(port) < 65536)


@dataclass(frozen=True)
class ServerSettings:
    # host:port of the HTTP API (agencies, operator, /metrics, /readyz); "0.0.0.0:8080" in a container
    listen: str = "127.0.0.1:8080"
    # a request body larger than this is refused with 413 (the PDF routes have their own limits)
    max_body_bytes: int = 1_048_576
    # after SIGTERM and drain_delay: how long requests in flight, then portal calls in flight, may take to
    # finish
    shutdown_grace: Duration = _D(10.0)
    # on SIGTERM, how long /readyz answers 503 "draining" with the listener still open, so that a
    # load balancer stops sending before the port closes (Ctrl-C, SIGINT, skips it)
    drain_delay: Duration = _D(5.0)
    # one INFO line per request on the dvcgw.access logger (route template, never the raw path)
    access_log: bool = False
    # a request body that has not wholly arrived this long after its head is answered 408 and its
    # connection closed (a client that stalls mid-body holds a connection and memory)
    body_timeout: Duration = _D(30.0)
    # a connection that has not sent a complete request head this long after it opened, or after
    # its last answer (an idle kept-alive connection), is closed (aiohttp's keep-alive timer)
    header_timeout: Duration = _D(60.0)
    # TLS (docs/decisions.md, issue 17): with tls_cert and tls_key the listener speaks HTTPS only
    tls_cert: str = ""  # PEM file: the server's certificate, then its chain
    tls_key: str = ""  # PEM file: the server's private key (unencrypted)
    # PEM file of the CA certificates that issue agencies' client certificates (mTLS)
    client_ca: str = ""
    # "none": no client certificate is asked for; "optional": asked for, verified against client_ca
    # when sent (an agency may still use its API key); "required": the handshake fails without one
    client_cert: Literal["none", "optional", "required"] = "none"

    def __post_init__(self) -> None:
        self._check_tls()
        if not 0.1 <= float(self.body_timeout) <= 600:
            raise ValueError("body_timeout: expected 100ms..600s")
        if not 1 <= float(self.header_timeout) <= 3600:
            raise ValueError("header_timeout: expected 1s..3600s")
        if not _listen_ok(self.listen):
            raise ValueError("listen: expected host:port, e.g. \"127.0.0.1:8080\"")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes: must be at least 1024")
        if not 0 <= float(self.drain_delay) <= 300:
            raise ValueError("drain_delay: expected 0..300s")

    def _check_tls(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_key: tls_cert and tls_key go together (the server's certificate and its key)")
        for name in ("tls_cert", "tls_key", "client_ca"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"{name}: no such file {path!r}")
        if self.client_ca and not self.tls_cert:
            raise ValueError("client_ca: client certificates need TLS: set tls_cert and tls_key")
        if self.client_cert != "none" and not self.client_ca:
            raise ValueError(f"client_cert: {self.client_cert!r} needs client_ca (the CAs that issue agencies' "
                             "certificates)")
        if self.client_ca and self.client_cert == "none":
            raise ValueError("client_cert: client_ca is set but client_cert is \"none\": say \"optional\" or "
                             "\"required\"")

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True)
class StorageSettings:
    # the store: the embedded queue's SQLite file (backend "sqlite"); the other SQLite files default to its
    # folder
    path: str = "var/dvcgw.sqlite3"
    # SQLite's own PRAGMA synchronous: "full", a 202 survives power loss; "normal", a crash of
    # the process (queues/sqlite.py)
    synchronous: Literal["full", "normal"] = "full"
    # most operations in one group commit (what arrived during the previous commit)
    commit_max_batch: int = 512
    # personal data at rest (docs/security.md): once a dossier's final state (3, 7, 8, 10) has been
    # delivered, its event payloads (dead letters' included) are pruned after this long; the
    # status API, the dead-letter list and the 766 indicators keep working from what is left.
    # On Kafka it is also the outbound topic's retention.ms. At least [retry] give_up_after.
    retention: Duration = _D(90 * 86400.0)
    # how often the pruning pass runs, and how many dossiers one of its transactions prunes
    prune_interval: Duration = _D(3600.0)
    prune_batch: int = 200
    # SQLite PRAGMA secure_delete: deleted and overwritten content is zeroed in the file, so a
    # pruned payload (and the copies earlier state changes left in free space) leaves the disk
    # without a VACUUM once the WAL is checkpointed
    secure_delete: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.commit_max_batch <= 100_000:
            raise ValueError("commit_max_batch: expected 1..100000")
        if not 3600.0 <= float(self.retention) <= 3650 * 86400.0:
            raise ValueError("retention: expected 1h..3650d")
        if not 1.0 <= float(self.prune_interval) <= 86400.0:
            raise ValueError("prune_interval: expected 1s..1d")
        if not 1 <= self.prune_batch <= 10_000:
            raise ValueError("prune_batch: expected 1..10000")


@dataclass(frozen=True)
class KafkaSettings:
    # comma-separated host:port list of the brokers
    bootstrap_servers: str = "127.0.0.1:9092"
    # the gateway's topics are named <topic_prefix>.<name> (docs/kafka.md)
    topic_prefix: str = "dvcgw"
    # the consumer group shared by every instance of one gateway
    group_id: str = "dvcgw"
    # partitions of each topic the gateway creates (dossiers are spread over them; more allows more instances)
    partitions: int = 6
    # replicas of each topic the gateway creates: 3 on a production cluster
    replication_factor: int = 1
    # how the gateway talks to the brokers (aiokafka's names)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # SASL: "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512" with a SASL_* protocol; the password as
    # sasl_plain_password_file
    sasl_mechanism: str = ""
    sasl_plain_username: str = ""
    sasl_plain_password: str = ""
    # TLS with an SSL or SASL_SSL protocol: the CA bundle, and the client certificate and key for mutual TLS
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    # how long a request to a broker may take
    request_timeout: Duration = _D(30.0)
    # how long the broker may hold a fetch of the owner's pump and of the shared-state view until
    # fetch_min_bytes have arrived: fewer, fuller fetches (less CPU per event in the gateway and
    # the broker) against up to this much latency per hop when traffic is light
    fetch_max_wait: Duration = _D(0.1)
    fetch_min_bytes: int = 262_144
    # personal data at rest (queues/kafka_retention.py): every topic rolls a segment this often
    # (segment.ms; only closed segments are deleted or compacted), and a compacted topic's
    # overwritten or tombstoned record is cleaned away within this long (max.compaction.lag.ms,
    # delete.retention.ms). Applied to existing topics at start-up too.
    segment_time: Duration = _D(86400.0)
    compaction_lag: Duration = _D(86400.0)

    def __post_init__(self) -> None:
        if not 0.01 <= float(self.segment_time) <= 30 * 86400.0:
            raise ValueError("segment_time: expected 10ms..30d")
        if not 0.01 <= float(self.compaction_lag) <= 30 * 86400.0:
            raise ValueError("compaction_lag: expected 10ms..30d")
        if not 0 <= float(self.fetch_max_wait) <= 1.0:
            raise ValueError("fetch_max_wait: expected 0..1s (it delays delivery and status reads)")
        if not 1 <= self.fetch_min_bytes <= 16 * 1024 * 1024:
            raise ValueError("fetch_min_bytes: expected 1..16777216")


@dataclass(frozen=True)
class QueueSettings:
    # "sqlite": one file, one instance (the default); "kafka": several instances on a broker ([queue.kafka],
    # docs/kafka.md); "memory": tests only, loses everything at exit
    backend: Literal["sqlite", "kafka", "memory"] = "sqlite"
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    # how long an idle worker waits before polling storage again when nothing woke it
    poll_interval: Duration = _D(1.0)
    # a claim not finished within this time is taken back (process died mid-call)
    lease: Duration = _D(120.0)


@dataclass(frozen=True)
class RetrySettings:
    # the retry ladder: the wait before each next attempt of a dossier whose delivery failed transiently; the
    # last one repeats
    delays: tuple[Duration, ...] = (_D(5), _D(30), _D(120), _D(600), _D(1800), _D(3600))
    # a dossier failing this long since its first failure has its events dead-lettered (reason "retryable")
    give_up_after: Duration = _D(72 * 3600)
    # each delay is stretched or shrunk by up to this fraction at random, so that retries do not arrive together
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not self.delays:
            raise ValueError("delays: at least one delay is needed")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter: must be in [0, 1)")


@dataclass(frozen=True)
class CircuitSettings:
    # consecutive transient portal failures that open the circuit (delivery pauses, nothing is lost)
    failure_threshold: int = 5
    # how long the circuit stays open before one probe call is let through
    cool_down: Duration = _D(30.0)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold: must be at least 1")


def _url_or_path(value: str) -> bool:
    return value.startswith(("/", "http://", "https://"))


@dataclass(frozen=True)
class PortalAdapterSettings:
    """The province-adapter variant (spec §3.4, ``[portal] transport = "adapter"``): one URL per
    operation, each a path after ``[portal] adapter_url`` (TH's ``Base``) or a whole http(s) URL."""

    create_url: str = "/adapter/ThemMoi"  # TH URLThemMoi: DongBoHoSoMC isUpdating "False"
    update_url: str = "/adapter/CapNhat"  # TH URLCapNhat: isUpdating "True"
    progress_url: str = "/adapter/DongBoTienTrinh"  # TH URLDongBoTienTrinh: CapNhatTienDoHoSoMC
    # [UNCERTAIN] TH has no lookup URL; "" = none (spec §5.6 fallback: create, then update on
    # "đã tồn tại"); else TraCuuHoSo as {"mahoso": …} → {error_code, message, result[]}
    lookup_url: str = ""
    # a static header the adapter or LGSP wants on every call (e.g. "X-API-Key"); its value is a
    # secret: auth_header_value_file
    auth_header: str = ""
    auth_header_value: str = ""

    def __post_init__(self) -> None:
        for key in ("create_url", "update_url", "progress_url"):
            if not _url_or_path(getattr(self, key)):
                raise ValueError(f"{key}: expected a path starting with \"/\" or an http(s) URL")
        if self.lookup_url and not _url_or_path(self.lookup_url):
            raise ValueError("lookup_url: expected \"\" (none), a path starting with \"/\" or an http(s) URL")
        if bool(self.auth_header) != bool(self.auth_header_value):
            raise ValueError("auth_header_value: auth_header and auth_header_value are set together or not at all")

    def url(self, base: str, key: str) -> str:
        """The whole URL of ``key`` (``create_url`` …): a path is appended to ``base``."""
        value = str(getattr(self, key))
        return value if value.startswith(("http://", "https://")) or not value else base.rstrip("/") + value


@dataclass(frozen=True)
class PortalSettings:
    # the message format: "service" = the JSON service envelope (spec §2, §3), "adapter" = the
    # province-adapter variant, one URL per operation and bare JSON arrays (§3.4, [portal.adapter])
    transport: Literal["service", "adapter"] = "service"
    # "none": no credential of the gateway's own (the adapter or LGSP authenticates), transport
    # "adapter" only
    auth: Literal["session", "oauth2", "oauth2+session", "none"] = "session"
    # the base URL of the national portal (DVCQG) or of the province adapter / LGSP in front of it
    adapter_url: str = "http://127.0.0.1:9000"
    # paths after adapter_url: the session login (spec §2.2), the integration service and the share service
    auth_endpoint: str = "/login"
    integration_endpoint: str = "/service"
    share_endpoint: str = "/share"
    # the session account (auth "session" or "oauth2+session"); the password as password_file
    username: str = ""
    password: str = ""
    # MaDonVi: the sending unit's code, as registered with the portal
    madonvi: str = "000.00.00.H55"
    # the dstcode of the service envelope, as issued with the account
    dstcode: str = ""
    # OAuth2 client credentials (auth "oauth2" or "oauth2+session"): the token endpoint, client id and secret
    # (client_secret_file), and how the secret is sent ("basic" header or "form" fields)
    token_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    client_auth: Literal["basic", "form"] = "basic"
    # per portal call
    timeout: Duration = _D(30.0)
    # portal calls in flight at once
    max_concurrency: int = 8
    # portal calls started per second at most; 0 = no limit (the portal's 429 answers are honoured either way)
    rate_limit_per_s: float = 0.0
    # progress items sent in one call, where the portal takes several
    batch_size: int = 1
    # spec §5.6: ask TraCuuHoSo before the first push of a dossier the gateway has not seen
    # delivered; false = the fallback path (send as create, resend as update on "đã tồn tại")
    lookup_before_create: bool = True
    # a portal session is renewed after this long, before the portal expires it
    session_max_age: Duration = _D(1800.0)
    connect_retries: int = 2  # quick in-call retries of connection errors (tenacity)
    adapter: PortalAdapterSettings = field(default_factory=PortalAdapterSettings)
    # spec §8: the province's identifier code (TH MaDinhDanhTinh, e.g. "H56"); with the units'
    # [[agencies]] madinhdanh it turns on the dossier-code rule; "" = codes are sent unchanged
    province_code: str = ""
    # the code rule's own SQLite file (sequences and local → portal codes); "" = portal_codes.sqlite3
    # beside [storage] path
    codes_path: str = ""

    def __post_init__(self) -> None:
        if not self.adapter_url.startswith(("http://", "https://")):
            raise ValueError("adapter_url: must be an http(s) URL")
        if self.auth in ("oauth2", "oauth2+session") and not self.token_url:
            raise ValueError("token_url: required when auth uses oauth2")
        self._check_transport()
        if self.province_code and not _PROVINCE_CODE.fullmatch(self.province_code):
            raise ValueError(f"province_code: expected a capital letter and 2 digits, such as \"H56\"; "
                             f"got {self.province_code!r}")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency: must be at least 1")
        if not 1 <= self.batch_size <= 500:
            raise ValueError("batch_size: must be between 1 and 500")
        if not is_unit_code(self.madonvi):
            raise ValueError(f"madonvi: expected the sending unit's code, such as \"000.00.01.H56\"; "
                             f"got {self.madonvi!r}")

    def _check_transport(self) -> None:
        if self.transport == "adapter" and self.auth in ("session", "oauth2+session"):
            raise ValueError("auth: the adapter transport (spec §3.4) has no session envelope; "
                             "use \"none\" (the adapter or LGSP authenticates) or \"oauth2\"")
        if self.transport != "adapter" and self.auth == "none":
            raise ValueError("auth: \"none\" is for transport = \"adapter\" only")
        if self.transport != "adapter" and self.adapter.auth_header:
            raise ValueError("adapter.auth_header: used by transport = \"adapter\" only")

    def codes_file(self, storage_path: str) -> Path:
        """Where the dossier-code rule's file lives."""
        return Path(self.codes_path) if self.codes_path else Path(storage_path).with_name("portal_codes.sqlite3")


_RECEIPT_SERVICES = ("PublishService", "BusinessService", "PortalService")


@dataclass(frozen=True)
class JobsSettings:
    """Durable jobs: provincial delivery, e-receipts (queues/jobs.py)."""

    # the jobs' own SQLite file; "" = jobs.sqlite3 beside [storage] path
    path: str = ""
    # jobs run at once (each of a different topic and key)
    concurrency: int = 8
    # done jobs are forgotten after this long (the newest of each key is kept for dedupe)
    keep_done: Duration = _D(30 * 86400.0)

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 256:
            raise ValueError("concurrency: expected 1..256")

    def file(self, storage_path: str) -> Path:
        """Where the jobs' file lives."""
        return Path(self.path) if self.path else Path(storage_path).with_name("jobs.sqlite3")


@dataclass(frozen=True)
class ReceiptsSettings:
    """VNPT e-receipts (adapters/vnpt_receipts, docs/e-receipts.md): one tenant's services and accounts."""

    # issue VNPT e-receipts for paid fees
    enabled: bool = False
    # the tenant's host, e.g. "https://<tenant>admin.vnpt-invoice.com.vn"; each service's address is
    # this plus its path below, never the address written inside a WSDL
    base_url: str = ""
    publish_path: str = "/PublishService.asmx"
    business_path: str = "/BusinessService.asmx"
    portal_path: str = "/PortalService.asmx"
    # each service's WSDL: "" = the minimal one shipped with the gateway; else a file path (a stored
    # copy of the tenant's ?wsdl, spec §9) or the tenant's ?wsdl URL (read once, at start-up)
    publish_wsdl: str = ""
    business_wsdl: str = ""
    portal_wsdl: str = ""
    # the publishing staff account (Account / ACpass) and the web-service account (username /
    # password, userName / userPass in some operations); secrets as acpass_file, password_file
    account: str = ""
    acpass: str = ""
    username: str = ""
    password: str = ""
    # the registered receipt range (mẫu số / ký hiệu): both or neither; neither = the tenant's default
    pattern: str = ""
    serial: str = ""
    # PaymentMethod: VNPT's code ("TTO", "TM", "CK") or the printed label ("Trực tuyến" …) (spec §6.4)
    payment_method_text: Literal["code", "label"] = "code"
    timeout: Duration = _D(30.0)  # per call (connect, and each wait for data)
    wsdl_timeout: Duration = _D(30.0)  # loading a WSDL from a URL at start-up
    max_concurrency: int = 4  # calls in flight towards the tenant (the adapter's threads)

    def __post_init__(self) -> None:
        for key in ("publish_path", "business_path", "portal_path"):
            if not getattr(self, key).startswith("/"):
                raise ValueError(f"{key}: expected a path starting with \"/\"")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url: must be an http(s) URL")
        if bool(self.pattern) != bool(self.serial):
            raise ValueError("serial: pattern and serial are set together or not at all (VNPT answers ERR:20)")
        if not 1 <= self.max_concurrency <= 32:
            raise ValueError("max_concurrency: expected 1..32")
        if not 0.1 <= float(self.timeout) <= 300:
            raise ValueError("timeout: expected 100ms..300s")
        if not 0.1 <= float(self.wsdl_timeout) <= 300:
            raise ValueError("wsdl_timeout: expected 100ms..300s")
        if self.enabled:
            for key in ("base_url", "account", "acpass", "username", "password"):
                if not getattr(self, key):
                    raise ValueError(f"{key}: required when receipts are enabled")

    def wsdl_for(self, service: str) -> str:
        """The configured WSDL source of ``service`` (``"PublishService"`` …); "" = the bundled one."""
        return str(getattr(self, f"{_service_key(service)}_wsdl"))

    def address_of(self, service: str) -> str:
        """The address ``service`` is called at: ``base_url`` + its path."""
        return self.base_url.rstrip("/") + str(getattr(self, f"{_service_key(service)}_path"))


def _service_key(service: str) -> str:
    if service not in _RECEIPT_SERVICES:
        raise KeyError(service)
    return service.removesuffix("Service").lower()


_PAYMENT_URLS = ("init_url", "query_url", "bill_url")


@dataclass(frozen=True)
class PaymentSettings:
    """The national payment platform (adapters/payment_platform, docs/payments.md): the gateway is
    the partner (MaDoiTac) that sends INIT, QUERY and GET_BILL and receives CONFIRM."""

    # take payments through the national payment platform
    enabled: bool = False
    # the platform's three endpoints (spec §1: configured per deployment, blank in public code)
    init_url: str = ""
    query_url: str = ""
    bill_url: str = ""
    partner_code: str = ""  # MaDoiTac, issued by the platform
    secret: str = ""  # the shared checksum secret (MaXacThuc); production: secret_file
    version: str = "1.0.6"  # PhienBan
    # [UNCERTAIN] where the citizen returns after paying: no public INIT carries one; when set it
    # is sent as the top-level INIT field return_url_field, outside the checksum
    return_url: str = ""
    return_url_field: str = "UrlTraVe"
    access_token: str = ""  # [UNCERTAIN] optional Authorization: Bearer; production: access_token_file
    ip: str = "127.0.0.1"  # INIT Ip: the IPv4 address of this server as registered with the platform
    # the payments' own SQLite file; "" = payments.sqlite3 beside [storage] path
    path: str = ""
    timeout: Duration = _D(30.0)
    # reconciliation: a transaction still khoi-tao this long after INIT is asked about (QUERY);
    # the loop wakes every interval, an unanswered transaction is asked again after interval,
    # doubling up to an hour, and becomes het-han give_up_after its INIT (spec §7)
    pending_after: Duration = _D(300.0)
    interval: Duration = _D(60.0)
    give_up_after: Duration = _D(86400.0)
    # [UNCERTAIN] ThoiGianGD of QUERY and GET_BILL: the INIT's (TH) or the time of the call
    query_time: Literal["init", "now"] = "init"
    # [UNCERTAIN] a QUERY reply is "paid" when MaLoi is "00" and, if this list is not empty, its
    # TrangThaiGD is one of these; any other MaLoi means not paid: "pending" (keep asking until
    # give_up_after, spec §7) or "failed" (that-bai at once, spec §11's literal reading)
    query_paid_states: tuple[str, ...] = ()
    query_not_paid: Literal["failed", "pending"] = "pending"
    # [UNCERTAIN] LoaiPhiLePhi as sent for a fee (phí, agency "1") and a charge (lệ phí, agency "2"):
    # OpenCPS sends "1"/"2", TH the text "Phi"
    fee_type_fee: str = "1"
    fee_type_charge: str = "2"
    max_amount: int = 1_000_000_000  # VND: a payment request above this is refused (422)

    def __post_init__(self) -> None:
        for key in _PAYMENT_URLS:
            url = getattr(self, key)
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"{key}: must be an http(s) URL")
        if self.enabled:
            for key in (*_PAYMENT_URLS, "partner_code", "secret"):
                if not getattr(self, key):
                    raise ValueError(f"{key}: required when payments are enabled")
        if len(self.partner_code) > 50:
            raise ValueError("partner_code: at most 50 characters (spec §3)")
        if not 0.5 <= float(self.timeout) <= 300:
            raise ValueError("timeout: expected 500ms..300s")
        if not 1 <= float(self.interval) <= 86400:
            raise ValueError("interval: expected 1s..1d")
        if not 0 <= float(self.pending_after) <= float(self.give_up_after):
            raise ValueError("pending_after: expected 0s..give_up_after")
        if not 1 <= self.max_amount <= 10**15:
            raise ValueError("max_amount: expected 1..10^15 VND")

    def file(self, storage_path: str) -> Path:
        """Where the payments' file lives."""
        return Path(self.path) if self.path else Path(storage_path).with_name("payments.sqlite3")


_PROCEDURE_PATTERN = re.compile(r"[A-Za-z0-9.*?\[\]!_-]{1,100}")
_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{64}")


def fingerprint_hex(text: str) -> str:
    """A SHA-256 fingerprint as written by openssl (``AB:CD:…``) or plain hex → 64 lower-case hex digits."""
    return text.replace(":", "").strip().lower()


def normal_subject(dn: str) -> str:
    """An RFC 4514 distinguished name in one canonical spelling (cryptography's), so that
    ``CN=x, O=y`` and ``CN=x,O=y`` match; raises ValueError when it is not a DN."""
    from cryptography import x509

    try:
        name = x509.Name.from_rfc4514_string(re.sub(r"(?<!\\)\s*,\s*", ",", dn.strip()))
    except ValueError as exc:
        raise ValueError(f"{dn!r} is not an RFC 4514 distinguished name such as \"CN=so-tp,O=UBND,C=VN\"") from exc
    if not len(name):
        raise ValueError("an empty distinguished name matches nothing")
    return name.rfc4514_string()


@dataclass(frozen=True)
class LimitSettings:
    """Per-agency limits: ``[limits]`` holds the defaults, an agency's ``limits`` table overrides
    any of them (docs/decisions.md, issue 17). The body size is ``[server] max_body_bytes``
    unless an agency sets its own."""

    # token bucket: sustained requests per second, and how many may come at once; rate 0 = no limit
    rate: float = 50.0
    burst: int = 200
    # requests of one agency in progress at once; one more is answered 429
    max_concurrent: int = 64
    # nesting of arrays and objects in a JSON body (a dossier needs 3)
    max_json_depth: int = 32

    def __post_init__(self) -> None:
        _check_limits(self.rate, self.burst, self.max_concurrent, self.max_json_depth)


def _check_limits(rate: float | None, burst: int | None, concurrent: int | None, depth: int | None) -> None:
    if rate is not None and not 0 <= rate <= 1_000_000:
        raise ValueError("rate: expected 0 (no limit)..1000000 requests per second")
    if burst is not None and not 1 <= burst <= 1_000_000:
        raise ValueError("burst: expected 1..1000000 requests")
    if concurrent is not None and not 1 <= concurrent <= 100_000:
        raise ValueError("max_concurrent: expected 1..100000")
    if depth is not None and not 2 <= depth <= 512:
        raise ValueError("max_json_depth: expected 2..512")


@dataclass(frozen=True)
class AgencyLimitSettings:
    """One agency's overrides of ``[limits]``; a key left out takes the default."""

    # this agency's token bucket (requests per second, 0 = no limit; requests at once); unset: [limits]
    rate: float | None = None
    burst: int | None = None
    # this agency's requests in progress at once; unset: [limits] max_concurrent
    max_concurrent: int | None = None
    # this agency's JSON nesting limit; unset: [limits] max_json_depth
    max_json_depth: int | None = None
    max_body_bytes: int | None = None  # this agency's body size in bytes; unset: [server] max_body_bytes

    def __post_init__(self) -> None:
        _check_limits(self.rate, self.burst, self.max_concurrent, self.max_json_depth)
        if self.max_body_bytes is not None and not 1024 <= self.max_body_bytes <= 64 * 1024 * 1024:
            raise ValueError("max_body_bytes: expected 1024..67108864")


@dataclass(frozen=True)
class AgencySettings:
    # the agency's identifier (its unit code); appears in logs, metrics and the audit, never its key
    code: str
    # the agency's API key (X-API-Key): as api_key_file, or only its SHA-256 in hex as api_key_sha256 (the key
    # itself then never sits on the server)
    api_key: str = ""
    api_key_sha256: str = ""
    # the unit codes (MaDonVi) whose dossiers this agency may send
    units: tuple[str, ...] = ()
    # spec §8: unit code → the unit's identifier code (MaDinhDanh) that generated portal codes
    # start with, e.g. { "000.00.01.H55" = "000.00.01.H56" }; a unit left out keeps its codes
    madinhdanh: Mapping[str, str] = field(default_factory=dict, hash=False)
    # deny by default (issue 17): the procedure codes (MaTTHC) whose dossiers this agency may send,
    # as glob patterns ("1.0012*", "*" for all); none = no dossier snapshot is accepted
    procedures: tuple[str, ...] = ()
    # mTLS (needs [server] client_cert): client certificates that identify this agency, by subject
    # (RFC 4514 DN, e.g. "CN=so-tp,O=UBND tinh,C=VN") or by SHA-256 fingerprint of the certificate
    tls_subjects: tuple[str, ...] = ()
    tls_fingerprints: tuple[str, ...] = ()
    limits: AgencyLimitSettings = field(default_factory=AgencyLimitSettings)

    def __post_init__(self) -> None:
        if not (self.api_key or self.api_key_sha256 or self.tls_subjects or self.tls_fingerprints):
            raise ValueError("api_key: one of api_key_sha256, api_key_file, api_key_env, tls_subjects or "
                             "tls_fingerprints is required")
        self._check_access()
        for unit, code in self.madinhdanh.items():
            if unit not in self.units:
                raise ValueError(f"madinhdanh: {unit!r} is not one of this agency's units")
            if not is_unit_code(code):
                raise ValueError(f"madinhdanh: {code!r} (of unit {unit}) is not an identifier code "
                                 "such as \"000.00.01.H56\"")
        if self.api_key_sha256 and len(self.api_key_sha256) != 64:
            raise ValueError("api_key_sha256: expected 64 hex characters")
        bad = [u for u in self.units if not is_unit_code(u)]
        if bad:
            raise ValueError(f"units: {bad[0]!r} is not a unit code such as \"000.00.01.H56\"")

    def _check_access(self) -> None:
        bad = [p for p in self.procedures if not _PROCEDURE_PATTERN.fullmatch(p)]
        if bad:
            raise ValueError(f"procedures: {bad[0]!r} is not a procedure-code pattern such as \"1.001234\", "
                             "\"1.0012*\" or \"*\"")
        for dn in self.tls_subjects:
            try:
                normal_subject(dn)
            except ValueError as exc:
                raise ValueError(f"tls_subjects: {exc}") from exc
        bad = [f for f in self.tls_fingerprints if not _FINGERPRINT.fullmatch(fingerprint_hex(f))]
        if bad:
            raise ValueError(f"tls_fingerprints: {bad[0]!r} is not a SHA-256 fingerprint (64 hex digits, "
                             "colons allowed)")


@dataclass(frozen=True)
class OperatorSettings:
    # the operator's API key (dead letters, maintenance, backup, books): as api_key_file, or only its SHA-256 in
    # hex as api_key_sha256; "" = the operator API is closed
    api_key: str = ""
    api_key_sha256: str = ""


@dataclass(frozen=True)
class TransitionSettings:
    # refuse (409) a TrangThaiHoSo change outside the spec §7.2 transition table; false = accept and count it
    enforce: bool = False


@dataclass(frozen=True)
class DossierSettings:
    """What agency input may look like beyond spec §6 (issue 13, docs/decisions.md)."""

    # every MaHoSo must have the portal's form <unit>-<yyMMdd>-<digits> (spec §8), not only
    # <unit>-<one or more segments>
    strict_code: bool = False

    # a text, identifier or URL value longer than this (characters, as sent) is refused with 422
    # before it is normalised; the §6.0 truncation limits (at most 4000) apply below it
    max_text_chars: int = 10_000
    # more combining marks in a row than this is refused with 422: normalising to NFC costs the
    # square of such a run, and a Vietnamese letter needs at most 2
    max_combining_marks: int = 4

    def __post_init__(self) -> None:
        if not 4000 <= self.max_text_chars <= 1_048_576:
            raise ValueError("max_text_chars: expected 4000..1048576 (at least the longest §6.0 truncation limit)")
        if not 2 <= self.max_combining_marks <= 16:
            raise ValueError("max_combining_marks: expected 2..16 (NFC costs the square of a run)")


@dataclass(frozen=True)
class SigningKeySettings:
    # the key's name, as agencies and [[certification.authorities]] refer to it
    alias: str
    # where the key lives: "file" (PKCS#12 or PEM), "pkcs11" (an HSM or token), "remote" (a CSC-style remote
    # signer)
    source: Literal["file", "pkcs11", "remote"]
    # agency codes that may sign with this key
    agencies: tuple[str, ...] = ()
    # source "file": a PKCS#12 file (pkcs12_file), or a PEM key and certificate (key_file, cert_file),
    # the intermediate certificates (chain_files), and the passphrase (passphrase_file, or passphrase_env)
    pkcs12_file: str = ""
    key_file: str = ""
    cert_file: str = ""
    chain_files: tuple[str, ...] = ()
    passphrase: str = ""
    passphrase_env: str = ""  # name of an environment variable holding the passphrase
    # source "pkcs11": the PKCS#11 module (.so), the token, the key and certificate labels, and the PIN
    # (pin_file, or pin_env)
    module: str = ""
    token_label: str = ""
    key_label: str = ""
    cert_label: str = ""
    pin: str = ""
    pin_env: str = ""  # name of an environment variable holding the PIN
    # source "remote": the CSC-style signer's base URL, the credential, and the client secret
    # (client_secret_file)
    url: str = ""
    credential_id: str = ""
    client_secret: str = ""


@dataclass(frozen=True)
class SigningSettings:
    # the signing keys, one [[signing.keys]] table each
    keys: tuple[SigningKeySettings, ...] = ()
    # RFC 3161 time-stamping authorities, tried in order
    tsa_urls: tuple[str, ...] = ()
    # per time-stamp request
    tsa_timeout: Duration = _D(10.0)
    # when every TSA fails: false = the request fails with 503 tsa_unavailable; true = it is signed at B-B and
    # the answer says X-Signature-Downgraded: true
    allow_downgrade: bool = False
    # PEM or DER files of the trusted root certificates for validation (the system store is never used)
    trust_roots: tuple[str, ...] = ()
    # a PDF larger than this is refused with 413
    max_pdf_bytes: int = 20 * 1024 * 1024
    workers: int = 0  # 0 = one per core
    tsa_attempts: int = 2  # tries per TSA URL before moving to the next one
    # how often a remote signer is asked about a job it has not confirmed
    remote_poll_interval: Duration = _D(5.0)
    remote_job_timeout: Duration = _D(86400.0)  # a remote job not confirmed by then fails
    callback_base_url: str = ""  # public base URL of the gateway for remote-signer webhooks; "" = poll only

    def __post_init__(self) -> None:
        aliases = [k.alias for k in self.keys]
        if len(aliases) != len(set(aliases)):
            raise ValueError("keys: key aliases must be unique")
        if not 1 <= self.tsa_attempts <= 10:
            raise ValueError("tsa_attempts: must be between 1 and 10")


@dataclass(frozen=True)
class CertifierSettings:
    """A certifier (người thực hiện chứng thực) who signs copies with a personal certificate."""

    id: str  # what a certification request names as its metadata "certifier_id" (opaque, no personal data)
    key: str  # alias of a [[signing.keys]] entry: the certifier's own key, normally remote (source = "remote")

    def __post_init__(self) -> None:
        if not self.id.strip() or not self.key.strip():
            raise ValueError("id: a certifier needs an id and a key")


@dataclass(frozen=True)
class CertificationAuthoritySettings:
    """One certifying authority (docs/certification.md): who may certify for it, and who signs with what."""

    code: str  # mã định danh of the authority (owner of its register books)
    name: str  # printed as the last line of the certification block, e.g. "UBND xã A, tỉnh B"
    # alias of a [[signing.keys]] entry: the authority's organisation certificate (a local key);
    # needed by signing_mode "authority" and "both"
    key: str = ""
    agencies: tuple[str, ...] = ()  # agency codes that may certify for it
    # who signs (spec §2.3): "authority" (its key), "certifier" (the request's certifier, through the
    # remote signing flow), or "both" (the certifier first, then the authority over it)
    signing_mode: Literal["authority", "certifier", "both"] = "authority"
    # the certifiers of "certifier" and "both": [[certification.authorities.certifiers]] id, key
    certifiers: tuple[CertifierSettings, ...] = ()

    def __post_init__(self) -> None:
        if not self.code.strip() or not self.name.strip():
            raise ValueError("code: the authority's code and name must not be empty")
        if not self.agencies:
            raise ValueError("agencies: name at least one agency that may certify for this authority")
        if self.signing_mode in ("authority", "both") and not self.key:
            raise ValueError(f"key: signing_mode {self.signing_mode!r} needs the authority's key")
        if self.signing_mode in ("certifier", "both") and not self.certifiers:
            raise ValueError(f"certifiers: signing_mode {self.signing_mode!r} needs at least one "
                             "[[certification.authorities.certifiers]] (id, key)")
        if self.signing_mode == "authority" and self.certifiers:
            raise ValueError("certifiers: only used with signing_mode \"certifier\" or \"both\"")
        ids = [c.id for c in self.certifiers]
        if len(ids) != len(set(ids)):
            raise ValueError("certifiers: certifier ids must be unique within an authority")


@dataclass(frozen=True)
class FeeScheduleSettings:
    """A certification fee schedule (spec §5) in force from a date; the spec's table is the default
    before the first configured one."""

    effective_from: str  # "YYYY-MM-DD" (Vietnam date of the certification) from which it applies
    first_pages: int = 2  # pages charged at first_rate
    first_rate: int = 2000  # VND per page for the first pages
    later_rate: int = 1000  # VND per page after them
    cap: int = 200_000  # at most this per copy

    def __post_init__(self) -> None:
        try:
            date.fromisoformat(self.effective_from)
        except (TypeError, ValueError) as exc:
            raise ValueError("effective_from: expected a date as \"YYYY-MM-DD\"") from exc
        for name in ("first_pages", "first_rate", "later_rate", "cap"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}: expected a whole number of 0 or more")


@dataclass(frozen=True)
class CertificationSettings:
    """E-certification of copies (signing/certification, docs/certification.md); off with no authority."""

    authorities: tuple[CertificationAuthoritySettings, ...] = ()
    level: Literal["B-T", "B-LT"] = "B-T"  # PAdES level of the certified copy (spec §2.3)
    path: str = ""  # the register's SQLite file; "" = certification.sqlite3 beside [storage] path
    max_upload_bytes: int = 20 * 1024 * 1024  # all file parts of one request together
    # the gateway's public base URL (https://…): a copy tied to a dossier (dossier_code) goes to DVCQG
    # as a DanhSachGiayToKetQua link under it; "" = such requests are refused (422 dossier_code)
    public_base_url: str = ""
    # dated fee schedules ([[certification.fee_schedules]]); the one with the latest effective_from on
    # or before the certification's date applies; before them (or with none), the spec §5 table
    fee_schedules: tuple[FeeScheduleSettings, ...] = ()
    # the signature check before a copy becomes valid reuses OCSP responses and CRLs fetched this long ago at
    # most (and never past their own nextUpdate); a revocation published since may be missed by that check
    # (docs/decisions.md). 0 = fetch them for every copy. The public verification always fetches them.
    revocation_cache: Duration = _D(300.0)

    def __post_init__(self) -> None:
        if self.revocation_cache < 0:
            raise ValueError("revocation_cache: expected a duration such as \"5m\", or 0 (off)")
        days = [f.effective_from for f in self.fee_schedules]
        if len(days) != len(set(days)):
            raise ValueError("fee_schedules: two schedules with the same effective_from")
        codes = [a.code for a in self.authorities]
        if len(codes) != len(set(codes)):
            raise ValueError("authorities: authority codes must be unique")
        if self.public_base_url and not self.public_base_url.startswith(("https://", "http://")):
            raise ValueError("public_base_url: expected an http(s) URL such as https://dvcgw.example.gov.vn")


@dataclass(frozen=True)
class MonitoringSettings:
    # the local time zone of the figures (days, months of the 766 indicators and the status page): hours east of
    # UTC
    timezone_offset_hours: int = 7


def _ratio_or_none(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a ratio from 0 to 1 (0.8 for 80 %)")


@dataclass(frozen=True)
class KpiTargetSettings:
    """The province's own target rate per 766 indicator (0..1), shown beside each figure. The
    defaults are the rate at which the spec's formula gives full points (docs/kpi.md), except
    ``online_share`` (the issue's example of a province target: 80 % online) and ``dossier_sync``
    (95 %: the one the DvcgwDossierSyncBelowTarget alert watches; at 100 % a single late dossier
    would keep it firing for the rest of the month)."""

    # the target rate of each indicator (0..1); unset = no target shown
    dossier_sync: float | None = 0.95
    on_time: float | None = 1.0
    online_share: float | None = 0.8
    original_result_available: float | None = 1.0
    so_hoa_giay_to_giai_quyet: float | None = 0.8
    reused_digitized_data: float | None = 0.8
    synced_with_dvcqg_personal_storage: float | None = 1.0
    online_payment_a: float | None = 1.0
    citizen_data_connected_dossier: float | None = 1.0
    vneid_share: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            _ratio_or_none(f.name, getattr(self, f.name))

    def for_indicator(self, indicator: str) -> float | None:
        """The target of ``indicator`` (its metric name, e.g. ``"DOSSIER_SYNC"``)."""
        value: float | None = getattr(self, indicator.lower(), None)
        return value


@dataclass(frozen=True)
class KpiSettings:
    """The 766 indicators computed live (monitoring/kpi, docs/kpi.md)."""

    # compute the 766 indicators live (GET /v1/kpi, /metrics, dvcgw kpi)
    enabled: bool = True
    # the indicators' own SQLite file; "" = kpi.sqlite3 beside [storage] path
    path: str = ""
    # an event that reached the portal later than this after the gateway accepted it, or that has
    # not reached it this long after, makes its dossier "not synced in real time" (DOSSIER_SYNC)
    sync_lag_slo: Duration = _D(3600.0)
    # how often the figures of the current month, quarter and year are computed (GET /v1/kpi and
    # dvcgw kpi compute at once); each run costs ~1 s of CPU, half of it under the GIL (docs/kpi.md)
    refresh_interval: Duration = _D(300.0)
    # how often recorded facts are written to the file (what a crash of the process can lose);
    # a write costs less an event the more it holds (bench_kpi, docs/kpi.md "Cost")
    flush_interval: Duration = _D(5.0)
    # ON_TIME, a dossier still in processing is judged at "now" (in progress within its deadline
    # = on time) or at "period_end" (kpi-766.md §3.2 step 3 read literally: due after the period)
    open_dossier_cut: Literal["now", "period_end"] = "now"
    # ON_TIME, a dossier without NgayHenTra (§3.2 step 5 needs the procedure catalogue)
    no_deadline: Literal["on_time", "late", "exclude"] = "on_time"
    # CITIZEN_DATA_CONNECTED_DOSSIER: DSKetNoiCSDL.MaCSDL codes of the national population
    # database (spec: code unknown; TH always sends "7")
    population_db_codes: tuple[str, ...] = ()
    # SO_HOA_GIAY_TO_GIAI_QUYET full points at 100 % (RE, linear) or 80 % (DESC)
    so_hoa_full_at: float = 1.0
    # points of ONLINE_SHARE under formula 3.3 (the 12-point online-service score is not known)
    online_share_max_points: float = 12.0
    targets: KpiTargetSettings = field(default_factory=KpiTargetSettings)

    def __post_init__(self) -> None:
        if not 1.0 <= float(self.sync_lag_slo) <= 7 * 86400.0:
            raise ValueError("sync_lag_slo: expected 1s..7d")
        if not 1.0 <= float(self.refresh_interval) <= 3600.0:
            raise ValueError("refresh_interval: expected 1s..1h")
        if not 0.05 <= float(self.flush_interval) <= 60.0:
            raise ValueError("flush_interval: expected 50ms..60s")
        if self.so_hoa_full_at not in (0.8, 1.0):
            raise ValueError("so_hoa_full_at: expected 0.8 (DESC) or 1.0 (RE)")
        if not 0.0 < self.online_share_max_points <= 100.0:
            raise ValueError("online_share_max_points: expected more than 0 and at most 100")
        bad = [c for c in self.population_db_codes if not c or len(c) > 32 or "," in c]
        if bad:
            raise ValueError(f"population_db_codes: {bad[0]!r} is not a MaCSDL code")

    def file(self, storage_path: str) -> Path:
        """Where the indicators' file lives."""
        return Path(self.path) if self.path else Path(storage_path).with_name("kpi.sqlite3")


@dataclass(frozen=True)
class CatalogueSettings:
    """The procedure catalogue (gateway/catalogue, docs/inbound.md): LayDanhSachTTHC + LayThuTuc
    pulled on a schedule, kept in its own SQLite file, served at /v1/procedures and used to fill
    TenTTHC, MaLinhVuc and TenLinhVuc of agency snapshots."""

    # pull the procedure catalogue and serve it (/v1/procedures)
    enabled: bool = True
    # the catalogue's own SQLite file; "" = catalogue.sqlite3 beside [storage] path
    path: str = ""
    # how often the catalogue is pulled (spec §9: procedure details are cached for 24 h); the first
    # pull runs at start-up when the file holds none younger than this
    interval: Duration = _D(86400.0)
    # after a failed pull, the next try comes this much later (not a whole interval)
    retry_interval: Duration = _D(600.0)
    # also call LayThuTuc for each procedure (MaLinhVuc/TenLinhVuc come only from the detail);
    # a detail younger than interval is not fetched again
    details: bool = True
    # what a snapshot whose MaTTHC is not in the catalogue gets: "warn" (accepted, counted, logged)
    # or "reject" (422 naming MaTTHC); never rejected while the catalogue is empty (never pulled)
    strictness: Literal["warn", "reject"] = "warn"

    def __post_init__(self) -> None:
        if not 60.0 <= float(self.interval) <= 30 * 86400.0:
            raise ValueError("interval: expected 1m..30d")
        if not 1.0 <= float(self.retry_interval) <= 86400.0:
            raise ValueError("retry_interval: expected 1s..1d")

    def file(self, storage_path: str) -> Path:
        """Where the catalogue's file lives."""
        return Path(self.path) if self.path else Path(storage_path).with_name("catalogue.sqlite3")


@dataclass(frozen=True)
class InboundSettings:
    """Dossiers citizens submitted on the portal, pulled and delivered to the provincial system
    (gateway/inbound, docs/inbound.md). The pull service is not public (spec §1.2 [UNCERTAIN]):
    its name, endpoint and parameter names are settings (docs/decisions.md)."""

    # pull the dossiers citizens submitted on the portal and deliver them to [provincial] url
    enabled: bool = False
    # the pull service's name ("service" key of the §2.3 envelope) and the endpoint it is posted to
    service: str = "LayDanhSachHoSoDVCQG"
    endpoint: Literal["integration", "share"] = "integration"
    # extra parameters flattened into the envelope, each "name=value" (e.g. "maDonVi=000.00.01.H56")
    params: tuple[str, ...] = ()
    # the parameter that carries the persisted cursor ("" on the first pull) and the reply key that
    # carries the next one (a reply without it leaves the cursor where it was)
    cursor_param: str = "cursor"
    cursor_field: str = "cursor"
    # the parameter that carries the page size; "" = none sent
    page_size_param: str = "limit"
    page_size: int = 50
    # pages read in one round (the next round comes after interval)
    max_pages: int = 20
    interval: Duration = _D(300.0)
    # the field of a pulled dossier that holds its textual DVCQG state (spec §7.9)
    state_field: str = "TrangThaiHoSo"
    # the puller's own SQLite file (the cursor); "" = inbound.sqlite3 beside [storage] path
    path: str = ""

    def __post_init__(self) -> None:
        if not self.service.strip():
            raise ValueError("service: the pull service's name is required")
        bad = [p for p in self.params if "=" not in p or not p.partition("=")[0].strip()]
        if bad:
            raise ValueError(f"params: {bad[0]!r} is not \"name=value\"")
        for key in ("cursor_param", "cursor_field", "state_field"):
            if not getattr(self, key).strip():
                raise ValueError(f"{key}: may not be empty")
        if not 1 <= self.page_size <= 1000:
            raise ValueError("page_size: expected 1..1000")
        if not 1 <= self.max_pages <= 10_000:
            raise ValueError("max_pages: expected 1..10000")
        if not 1.0 <= float(self.interval) <= 86400.0:
            raise ValueError("interval: expected 1s..1d")

    def extra_params(self) -> dict[str, str]:
        """``params`` as a mapping (name → value)."""
        return {k.strip(): v for k, _, v in (p.partition("=") for p in self.params)}

    def file(self, storage_path: str) -> Path:
        """Where the puller's file lives."""
        return Path(self.path) if self.path else Path(storage_path).with_name("inbound.sqlite3")


@dataclass(frozen=True)
class ProvincialSettings:
    """The provincial one-stop system's REST endpoint that receives inbound dossiers
    (adapters/provincial_system, docs/inbound.md)."""

    # POST target of each dossier; required when [inbound] is enabled
    url: str = ""
    # the header that authenticates the gateway, and its value (auth_value_file for a secret file)
    auth_header: str = "Authorization"
    auth_value: str = ""
    timeout: Duration = _D(30.0)

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("url: must be an http(s) URL")
        if not self.auth_header or any(c in self.auth_header for c in " :\r\n"):
            raise ValueError("auth_header: expected an HTTP header name such as \"Authorization\"")
        if any(c in self.auth_value for c in "\r\n"):
            raise ValueError("auth_value: may not contain line breaks")
        if not 0.1 <= float(self.timeout) <= 300:
            raise ValueError("timeout: expected 100ms..300s")


@dataclass(frozen=True)
class HealthSettings:
    """/readyz (gateway/health.py): each sub-check's result is kept ok_cache when it passed and
    fail_cache when it failed (X-Road's 2 s / 30 s); a check gets check_timeout to answer."""

    # how long a passed, and a failed, sub-check result is reused, and how long a check may take
    ok_cache: Duration = _D(2.0)
    fail_cache: Duration = _D(30.0)
    check_timeout: Duration = _D(2.0)
    # start in maintenance mode: /readyz answers 503 "maintenance" until an operator turns it off
    maintenance: bool = False

    def __post_init__(self) -> None:
        if not 0 <= float(self.ok_cache) <= 300:
            raise ValueError("ok_cache: expected 0..300s")
        if not 0 <= float(self.fail_cache) <= 300:
            raise ValueError("fail_cache: expected 0..300s")
        if not 0.05 <= float(self.check_timeout) <= 60:
            raise ValueError("check_timeout: expected 50ms..60s")


@dataclass(frozen=True)
class LogSettings:
    # "text": key=value lines; "json": one JSON object per line (docs/operator-guide.md, Logs)
    format: Literal["text", "json"] = "text"
    # an identical warning or error (or protocol errors from one peer) is written once per
    # interval; the next line written says how many were not; "0s" writes every one
    repeat_interval: Duration = _D(10.0)

    def __post_init__(self) -> None:
        if not 0 <= float(self.repeat_interval) <= 3600:
            raise ValueError("repeat_interval: expected 0..3600s")


@dataclass(frozen=True)
class AuditSettings:
    """The message log (audit/, docs/audit.md): a hash-chained record of every exchange, sealed
    with the gateway's own key and time-stamped by the TSA. ``bodies``: "off" = no message log at
    all (no records, no seals, nothing refused); "hash" = each record keeps the SHA-256 of the
    request and of the response; "full" = the bodies too, AES-256-GCM encrypted with ``key``."""

    # "off" = no message log; "hash" = each record keeps both bodies' SHA-256; "full" = also the
    # bodies, encrypted with key
    bodies: Literal["off", "hash", "full"] = "off"
    # the log's own SQLite file; "" = audit.sqlite3 beside [storage] path
    path: str = ""
    # 32 bytes as 64 hex digits (bodies = "full" only); give it as key_file or DVCGW_AUDIT__KEY
    key: str = field(default="", repr=False)
    # alias of a local (file or PKCS#11) [[signing.keys]] entry: the gateway's own sealing key
    seal_key: str = ""
    # a seal every seal_interval, or sooner once seal_records records are unsealed
    seal_interval: Duration = _D(60.0)
    seal_records: int = 10_000
    # records are written in batches: at most write_interval after being recorded
    write_interval: Duration = _D(0.05)
    # the log file's PRAGMA synchronous: "normal" = a power loss may lose the newest batches (the
    # chain stays whole; no fsync per batch competes with the store's group commit); "full" = each
    # batch is on disk before the next
    synchronous: Literal["full", "normal"] = "normal"
    # after this long without a successful seal, agency requests are refused (503) and /readyz
    # says why; 0 = never (a TSA outage must not stop the province unless the operator chose it)
    halt_after_unsealed: Duration = _D(0.0)
    # records older than this are pruned once an exported, sealed archive covers them; 0 = keep all
    retention: Duration = _D(0.0)

    def __post_init__(self) -> None:
        if self.bodies == "full":
            try:
                ok = len(bytes.fromhex(self.key)) == 32
            except ValueError:
                ok = False
            if not ok:
                raise ValueError("key: bodies = \"full\" needs a 32-byte key as 64 hex digits "
                                 "(key_file, or DVCGW_AUDIT__KEY)")
        if self.bodies != "off" and not self.seal_key:
            raise ValueError("seal_key: the message log needs a [[signing.keys]] alias to seal with")
        if not 1.0 <= float(self.seal_interval) <= 86400:
            raise ValueError("seal_interval: expected 1s..1d")
        if not 1 <= self.seal_records <= 10_000_000:
            raise ValueError("seal_records: expected 1..10000000")
        if not 0.001 <= float(self.write_interval) <= 5:
            raise ValueError("write_interval: expected 1ms..5s")
        if float(self.halt_after_unsealed) < 0 or float(self.retention) < 0:
            raise ValueError("halt_after_unsealed: expected a duration >= 0")

    def file(self, storage_path: str) -> Path:
        """Where the message log lives."""
        return Path(self.path) if self.path else Path(storage_path).with_name("audit.sqlite3")


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    circuit: CircuitSettings = field(default_factory=CircuitSettings)
    portal: PortalSettings = field(default_factory=PortalSettings)
    agencies: tuple[AgencySettings, ...] = ()
    limits: LimitSettings = field(default_factory=LimitSettings)
    operator: OperatorSettings = field(default_factory=OperatorSettings)
    transitions: TransitionSettings = field(default_factory=TransitionSettings)
    dossiers: DossierSettings = field(default_factory=DossierSettings)
    signing: SigningSettings = field(default_factory=SigningSettings)
    certification: CertificationSettings = field(default_factory=CertificationSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    kpi: KpiSettings = field(default_factory=KpiSettings)
    catalogue: CatalogueSettings = field(default_factory=CatalogueSettings)
    inbound: InboundSettings = field(default_factory=InboundSettings)
    provincial: ProvincialSettings = field(default_factory=ProvincialSettings)
    receipts: ReceiptsSettings = field(default_factory=ReceiptsSettings)
    payment: PaymentSettings = field(default_factory=PaymentSettings)
    jobs: JobsSettings = field(default_factory=JobsSettings)
    log: LogSettings = field(default_factory=LogSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)

    def __post_init__(self) -> None:
        codes = [a.code for a in self.agencies]
        if len(codes) != len(set(codes)):
            raise ValueError("agencies: agency codes must be unique")
        digests = [key_digest(a.api_key, a.api_key_sha256) for a in self.agencies]
        for i, d in enumerate(digests):
            if d is not None and d in digests[:i]:
                raise ValueError(f"agencies[{i}].api_key: the same key as agencies[{digests.index(d)}]: "
                                 "each agency needs its own key")
        if float(self.storage.retention) < float(self.retry.give_up_after):
            raise ValueError("storage.retention: must be at least retry.give_up_after (an event still in the "
                             "retry ladder keeps its payload; on Kafka, its outbound record)")
        if self.inbound.enabled and not self.provincial.url:
            raise ValueError("provincial.url: required when [inbound] is enabled (where pulled dossiers go)")
        operator = key_digest(self.operator.api_key, self.operator.api_key_sha256)
        if operator is not None and operator in digests:
            raise ValueError("operator.api_key: equal to an agency's key; the operator needs a key of its own")
        self._check_code_rule()
        self._check_certification()
        self._check_client_certificates()
        self._check_audit()

    def _check_client_certificates(self) -> None:
        """A certificate mapping needs a server that asks for certificates, and names one agency."""
        seen: dict[str, int] = {}
        for i, a in enumerate(self.agencies):
            names = [("tls_subjects", normal_subject(dn)) for dn in a.tls_subjects]
            names += [("tls_fingerprints", fingerprint_hex(f)) for f in a.tls_fingerprints]
            for key, name in names:
                if self.server.client_cert == "none":
                    raise ValueError(f"agencies[{i}].{key}: the server asks for no client certificate; set "
                                     "[server] tls_cert, tls_key, client_ca and client_cert")
                if seen.setdefault(name, i) != i:
                    raise ValueError(f"agencies[{i}].{key}: {name!r} already identifies agencies[{seen[name]}]")

    def _check_certification(self) -> None:
        """The authority's key is a local [[signing.keys]] entry, and each certifier's key an entry of any
        source; every agency of the authority may use them."""
        agencies = {a.code for a in self.agencies}
        for i, auth in enumerate(self.certification.authorities):
            for code in auth.agencies:
                if code not in agencies:
                    raise ValueError(f"certification.authorities[{i}].agencies: no agency {code!r}")
            if auth.key:
                ks = self._certification_key(f"certification.authorities[{i}]", auth.key, auth.agencies)
                if ks.source == "remote":
                    raise ValueError(f"certification.authorities[{i}].key: {auth.key!r} is a remote key; the "
                                     "authority's seal is a local (file or PKCS#11) key")
            for j, certifier in enumerate(auth.certifiers):
                self._certification_key(f"certification.authorities[{i}].certifiers[{j}]", certifier.key,
                                        auth.agencies)

    def _certification_key(self, where: str, alias: str, agencies: tuple[str, ...]) -> SigningKeySettings:
        """The [[signing.keys]] entry ``alias``, which every agency of the authority may use."""
        ks = next((k for k in self.signing.keys if k.alias == alias), None)
        if ks is None:
            raise ValueError(f"{where}.key: no [[signing.keys]] alias {alias!r}")
        for code in agencies:
            if code not in ks.agencies:
                raise ValueError(f"{where}.agencies: agency {code!r} may not use key {alias!r} "
                                 "(add it to that key's agencies)")
        return ks

    def _check_audit(self) -> None:
        """The seal key is a local [[signing.keys]] entry, and a TSA is configured to stamp seals."""
        if self.audit.bodies == "off":
            return
        ks = next((k for k in self.signing.keys if k.alias == self.audit.seal_key), None)
        if ks is None or ks.source == "remote":
            raise ValueError("audit.seal_key: no local (file or PKCS#11) [[signing.keys]] alias "
                             f"{self.audit.seal_key!r}")
        if not self.signing.tsa_urls:
            raise ValueError("signing.tsa_urls: the message log's seals are time-stamped; configure a TSA")

    def unit_identifiers(self) -> dict[str, str]:
        """Every configured unit → its MaDinhDanh (spec §8), over all agencies."""
        return {unit: code for a in self.agencies for unit, code in a.madinhdanh.items()}

    def _check_code_rule(self) -> None:
        seen: dict[str, str] = {}
        for i, a in enumerate(self.agencies):
            for unit, code in a.madinhdanh.items():
                if seen.setdefault(unit, code) != code:
                    raise ValueError(f"agencies[{i}].madinhdanh: unit {unit} has another MaDinhDanh in an "
                                     "earlier agency")
        province = self.portal.province_code
        if not province or not seen:
            return
        bad = [c for c in seen.values() if province not in c]
        if bad:
            raise ValueError(f"agencies.madinhdanh: {bad[0]!r} does not contain the province code {province}: "
                             "the codes generated from it would not either (spec §8)")
        if self.portal.transport == "adapter" and not self.portal.adapter.lookup_url:
            raise ValueError("portal.adapter.lookup_url: the dossier-code rule checks a generated code with "
                             "TraCuuHoSo before using it (spec §8 step 5); set the adapter's lookup URL, "
                             "or leave province_code empty")


#: Keys that older versions read, with what replaced them: a file that still sets one is refused
#: with this message rather than the generic "unknown key" (issue 12: one process per instance).
_ONE_PROCESS = "dvcgw serve is one process: the HTTP API, the store and the delivery engine share one event loop"
REMOVED_KEYS: dict[str, str] = {
    "server.acceptors": f"removed; {_ONE_PROCESS}; to scale out, run several instances on the Kafka backend",
    "server.fast_accept": f"removed; every request goes through aiohttp and its middleware ({_ONE_PROCESS})",
    "queue.delivery_process": f"removed; {_ONE_PROCESS}",
    "queue.delivery_nice": f"removed; {_ONE_PROCESS}",
    "queue.delivery_priority": f"removed; {_ONE_PROCESS}",
    "storage.commit_window": "removed; a group commit takes whatever arrived during the previous commit "
                             "(storage.commit_max_batch bounds it)",
}


def key_digest(api_key: str, api_key_sha256: str) -> str | None:
    """The SHA-256 (hex) of a configured key, however it was given; None when none is."""
    if api_key_sha256:
        return api_key_sha256.lower()
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest() if api_key else None


#: The settings that hold secrets (docs/security.md, "Secrets"): a settings file gives each only as
#: ``<name>_file`` (a file's content) or ``<name>_env`` (an environment variable's name), or the
#: environment sets it (``DVCGW_SECTION__NAME``); an inline value is refused by the loader. A new
#: secret setting goes here (tests/security/test_secrets.py fails on a secret-looking name that
#: is missing). ``pin_env`` / ``passphrase_env`` of a signing key are the same idea, older.
SECRET_FIELDS: Mapping[type, frozenset[str]] = {
    KafkaSettings: frozenset({"sasl_plain_password"}),
    PortalAdapterSettings: frozenset({"auth_header_value"}),
    PortalSettings: frozenset({"password", "client_secret"}),
    ReceiptsSettings: frozenset({"acpass", "password"}),
    PaymentSettings: frozenset({"secret", "access_token"}),
    AgencySettings: frozenset({"api_key"}),
    OperatorSettings: frozenset({"api_key"}),
    SigningKeySettings: frozenset({"passphrase", "pin", "client_secret"}),
    ProvincialSettings: frozenset({"auth_value"}),
    AuditSettings: frozenset({"key"}),  # the "full" bodies encryption key
}


def secret_values(settings: Settings) -> list[str]:
    """Every non-empty secret the settings hold (the log-scan test looks for each in the logs)."""
    found: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, tuple):
            for item in node:
                visit(item)
            return
        if not is_dataclass(node):
            return
        names = SECRET_FIELDS.get(type(node), frozenset())
        for f in fields(node):
            value = getattr(node, f.name)
            if f.name in names and isinstance(value, str) and value:
                found.append(value)
            visit(value)

    visit(settings)
    return found


def load(path: str | Path | None, environ: dict[str, str] | None = None) -> Settings:
    """Load and validate the settings; raises ConfigError naming the offending key (an inline
    secret in the file too: :data:`SECRET_FIELDS`)."""
    return load_settings(Settings, path, environ, removed=REMOVED_KEYS, secrets=SECRET_FIELDS)
