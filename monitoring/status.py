"""The built-in status page (``GET /status``): one HTML document, Vietnamese or English, no script.

For operators who do not run Grafana yet: sync health, the queue and its dead letters with their
reasons, the portal circuit, and the 766 indicators as small server-side SVG charts. The page
refreshes itself (``<meta http-equiv="refresh">``). Everything dynamic is escaped; dossier codes
and personal data never appear (dead letters are grouped by reason, and long digit runs in the
portal's messages are masked).

:func:`render` is pure: the handler (``gateway/ops_routes.py``) gathers a :class:`StatusView`.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

REFRESH_SECONDS = 10
LANGS = ("vi", "en")

_T: dict[str, dict[str, str]] = {
    "title": {"vi": "Trạng thái cổng kết nối DVCQG", "en": "DVCQG gateway status"},
    "instance": {"vi": "Máy chủ", "en": "Instance"},
    "version": {"vi": "Phiên bản", "en": "Version"},
    "uptime": {"vi": "Thời gian chạy", "en": "Uptime"},
    "backend": {"vi": "Hàng đợi", "en": "Queue backend"},
    "updated": {"vi": "Cập nhật lúc", "en": "Updated at"},
    "refresh": {"vi": f"tự làm mới sau {REFRESH_SECONDS} giây", "en": f"refreshes every {REFRESH_SECONDS} s"},
    "readiness": {"vi": "Sẵn sàng", "en": "Readiness"},
    "ready_ok": {"vi": "Sẵn sàng nhận hồ sơ", "en": "Ready to accept dossiers"},
    "ready_fail": {"vi": "Không sẵn sàng", "en": "Not ready"},
    "ready_maintenance": {"vi": "Đang bảo trì (bộ cân bằng tải bỏ qua máy này)",
                          "en": "In maintenance (taken out of the load balancer)"},
    "ready_draining": {"vi": "Đang dừng", "en": "Draining"},
    "ready_starting": {"vi": "Đang khởi động", "en": "Starting"},
    "outage": {"vi": "Cổng DVCQG không phản hồi: việc đồng bộ đang tạm dừng và sẽ tự thử lại",
               "en": "The national portal is not answering: sync is held and will retry by itself"},
    "paused": {"vi": "Cổng DVCQG từ chối thông tin xác thực: cần người vận hành xử lý",
               "en": "The national portal refused the credentials: an operator must act"},
    "sync": {"vi": "Đồng bộ", "en": "Sync"},
    "accepted": {"vi": "Sự kiện đã nhận", "en": "Events accepted"},
    "delivered": {"vi": "Đã chuyển lên cổng", "en": "Delivered to the portal"},
    "failed": {"vi": "Lần gửi lỗi", "en": "Failed attempts"},
    "lag": {"vi": "Độ trễ đồng bộ (trung vị / p95)", "en": "Sync lag (median / p95)"},
    "oldest": {"vi": "Sự kiện chờ lâu nhất", "en": "Oldest pending event"},
    "queue": {"vi": "Hàng đợi (số hồ sơ theo trạng thái)", "en": "Queue (dossiers by state)"},
    "state": {"vi": "Trạng thái", "en": "State"},
    "dossiers": {"vi": "Hồ sơ", "en": "Dossiers"},
    "circuit": {"vi": "Kết nối cổng DVCQG", "en": "Portal circuit"},
    "circuit_closed": {"vi": "bình thường", "en": "closed (normal)"},
    "circuit_open": {"vi": "ngắt (đang chờ thử lại)", "en": "open (waiting to retry)"},
    "circuit_half_open": {"vi": "đang thử lại", "en": "half-open (probing)"},
    "reason": {"vi": "Lý do", "en": "Reason"},
    "failures": {"vi": "Lỗi liên tiếp", "en": "Consecutive failures"},
    "reopens": {"vi": "Thử lại lúc", "en": "Retries at"},
    "dead": {"vi": "Hàng chết (cần người vận hành)", "en": "Dead letters (need an operator)"},
    "dead_none": {"vi": "Không có", "en": "None"},
    "class": {"vi": "Loại", "en": "Class"},
    "code": {"vi": "Mã lỗi", "en": "Code"},
    "count": {"vi": "Số lượng", "en": "Count"},
    "latest": {"vi": "Gần nhất", "en": "Latest"},
    "message": {"vi": "Thông báo của cổng", "en": "Portal's message"},
    "dead_more": {"vi": "chỉ tính {n} thư đầu tiên", "en": "first {n} letters only"},
    "kpi": {"vi": "Chỉ số 766 (ước tính của cổng kết nối)", "en": "766 indicators (gateway estimates)"},
    "kpi_none": {"vi": "Chưa có số liệu", "en": "Not computed yet"},
    "kpi_note": {"vi": "Số liệu ước tính; điểm chính thức do Cổng DVCQG công bố.",
                 "en": "Estimates only; the national portal's published score is authoritative."},
    "month": {"vi": "Tháng", "en": "Month"},
    "quarter": {"vi": "Quý", "en": "Quarter"},
    "year": {"vi": "Năm", "en": "Year"},
    "target": {"vi": "mục tiêu", "en": "target"},
    "points": {"vi": "điểm", "en": "points"},
    "checks": {"vi": "Kiểm tra", "en": "Checks"},
    "maintenance_since": {"vi": "Bảo trì từ", "en": "Maintenance since"},
}

KPI_NAMES: dict[str, dict[str, str]] = {
    "DOSSIER_SYNC": {"vi": "Đồng bộ trạng thái hồ sơ kịp thời", "en": "Dossier state synced in real time"},
    "ON_TIME": {"vi": "Giải quyết đúng hạn", "en": "Processed on time"},
    "ONLINE_SHARE": {"vi": "Tỷ lệ hồ sơ trực tuyến", "en": "Online share"},
    "END_TO_END_SHARE": {"vi": "Tỷ lệ trực tuyến toàn trình", "en": "End-to-end online share"},
    "ORIGINAL_RESULT_AVAILABLE": {"vi": "Có kết quả điện tử", "en": "Electronic result available"},
    "SO_HOA_GIAY_TO_GIAI_QUYET": {"vi": "Số hóa thành phần và kết quả", "en": "Digitised components and results"},
    "REUSED_DIGITIZED_DATA": {"vi": "Tái sử dụng dữ liệu số hóa", "en": "Re-used digitised data"},
    "SYNCED_WITH_DVCQG_PERSONAL_STORAGE": {"vi": "Kết nối kho dữ liệu cá nhân",
                                           "en": "Connected to the citizen's data store"},
    "ONLINE_PAYMENT_A": {"vi": "Thanh toán trực tuyến", "en": "Paid online"},
    "CITIZEN_DATA_CONNECTED_DOSSIER": {"vi": "Sử dụng dữ liệu dân cư", "en": "Population data used"},
    "VNEID_SHARE": {"vi": "Xác thực VNeID", "en": "VNeID-authenticated"},
}

STATE_NAMES: dict[str, dict[str, str]] = {
    "pending": {"vi": "chờ gửi", "en": "pending"},
    "in_flight": {"vi": "đang gửi", "en": "in flight"},
    "delivered": {"vi": "đã gửi", "en": "delivered"},
    "retrying": {"vi": "chờ thử lại", "en": "retrying"},
    "dead": {"vi": "hàng chết", "en": "dead"},
    "parked": {"vi": "chờ hồ sơ lên cổng", "en": "parked (waiting for its dossier)"},
}

_DIGITS = re.compile(r"\d{9,}")


@dataclass(frozen=True)
class DeadGroup:
    """Dead letters of one reason: never a dossier code."""

    cls: str
    code: str
    count: int
    latest: float
    message: str


@dataclass(frozen=True)
class KpiBar:
    indicator: str
    period: str  # month | quarter | year
    period_id: str
    numerator: float
    denominator: float
    ratio: float
    score: float | None
    max_points: float | None
    target: float | None


@dataclass
class StatusView:
    now: float
    instance: str
    version: str
    started_at: float
    backend: str
    readiness: Mapping[str, Any]
    accepted: float = 0.0
    delivered: float = 0.0
    failed: float = 0.0
    lag_p50: float | None = None
    lag_p95: float | None = None
    oldest_pending_age: float | None = None
    by_state: Mapping[str, int] = field(default_factory=dict)
    dead: Sequence[DeadGroup] = ()
    dead_total: int = 0
    dead_scanned_limit: int | None = None  # set when only the first letters were grouped
    kpi: Sequence[KpiBar] = ()
    tz_hours: int = 7  # local time of the page's dates ([monitoring] timezone_offset_hours)


def pick_lang(query: str | None, accept_language: str | None) -> str:
    """``?lang=`` wins; then the first of vi/en in Accept-Language; Vietnamese by default."""
    if query in LANGS:
        return query  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGS:
            return tag
    return "vi"


def mask(text: str, limit: int = 160) -> str:
    """A portal message fit for a page many people see: digit runs of 9 or more (identity-card
    numbers) masked, cut to ``limit`` characters."""
    text = _DIGITS.sub(lambda m: "•" * len(m.group()), text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(ts: float | None, tz_hours: int) -> str:
    if ts is None:
        return "—"
    tz = dt.timezone(dt.timedelta(hours=tz_hours))
    return dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _number(x: float) -> str:
    return f"{int(x):,}".replace(",", ".") if float(x).is_integer() else f"{x:,.2f}"


def kpi_chart(bars: Sequence[KpiBar], lang: str) -> str:
    """One SVG per indicator: a bar per period (month, quarter, year), the target as a red mark."""
    width, row, left = 470, 22, 118
    height = row * len(bars) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{_e(KPI_NAMES.get(bars[0].indicator, {}).get(lang, bars[0].indicator))}">']
    span = width - left - 110
    for i, b in enumerate(bars):
        y = 4 + i * row
        ratio = max(0.0, min(b.ratio, 1.0))
        good = b.target is None or b.ratio >= b.target
        colour = "#2e7d32" if good else "#c62828"
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{_e(_T[b.period][lang])} {_e(b.period_id)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{span}" height="14" fill="#eceff1"/>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{span * ratio:.1f}" height="14" fill="{colour}"/>')
        if b.target is not None:
            tx = left + span * max(0.0, min(b.target, 1.0))
            parts.append(f'<line x1="{tx:.1f}" y1="{y}" x2="{tx:.1f}" y2="{y + 20}" stroke="#b71c1c" '
                         f'stroke-width="2"><title>{_e(_T["target"][lang])} {b.target * 100:.0f} %</title></line>')
        label = f"{b.ratio * 100:.1f} % ({_number(b.numerator)}/{_number(b.denominator)})"
        parts.append(f'<text x="{left + span + 6}" y="{y + 14}" font-size="12">{_e(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _language_links(lang: str) -> str:
    links = []
    for code, name in (("vi", "Tiếng Việt"), ("en", "English")):
        current = ' aria-current="page"' if code == lang else ""
        links.append(f'<a href="?lang={code}"{current}>{name}</a>')
    return " | ".join(links)


def render(v: StatusView, lang: str) -> str:
    """The whole page."""
    return "\n".join([*_head(v, lang), *_sync(v, lang), *_circuit(v, lang), *_dead(v, lang), *_kpi(v, lang),
                      "</body></html>"])


def _t(key: str, lang: str) -> str:
    return _T[key][lang]


def _portal(v: StatusView) -> Mapping[str, Any]:
    return v.readiness.get("checks", {}).get("portal", {})  # type: ignore[no-any-return]


def _head(v: StatusView, lang: str) -> list[str]:
    status = str(v.readiness.get("status", "fail"))
    banner_key = {"ok": "ready_ok", "maintenance": "ready_maintenance", "draining": "ready_draining",
                  "starting": "ready_starting"}.get(status, "ready_fail")
    out = [
        "<!DOCTYPE html>", f'<html lang="{lang}"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(_t('title', lang))}</title>", f"<style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(_t('title', lang))}</h1><nav>{_language_links(lang)}</nav></header>",
        f'<p class="meta">{_e(_t("instance", lang))}: <b>{_e(v.instance)}</b> · {_e(_t("version", lang))} '
        f'{_e(v.version)} · {_e(_t("backend", lang))}: {_e(v.backend)} · {_e(_t("uptime", lang))}: '
        f'{_e(duration(max(v.now - v.started_at, 0.0)))} · {_e(_t("updated", lang))} {_e(_when(v.now, v.tz_hours))} '
        f'({_e(_t("refresh", lang))})</p>',
        f'<div id="readiness" class="banner {"ok" if status == "ok" else "bad"}">{_e(_t("readiness", lang))}: '
        f'{_e(_t(banner_key, lang))}</div>',
    ]
    maintenance = v.readiness.get("maintenance") or {}
    if maintenance.get("enabled"):
        reason = f" — {_e(maintenance.get('reason'))}" if maintenance.get("reason") else ""
        out.append(f'<p class="note">{_e(_t("maintenance_since", lang))} {_e(maintenance.get("since"))}{reason}</p>')
    portal = _portal(v)
    if portal.get("paused"):
        out.append(f'<div id="portal-outage" class="banner bad">{_e(_t("paused", lang))}</div>')
    elif str(portal.get("circuit", "closed")) != "closed":
        out.append(f'<div id="portal-outage" class="banner bad">{_e(_t("outage", lang))}</div>')
    return out


def _sync(v: StatusView, lang: str) -> list[str]:
    out = ['<section id="sync"><h2>' + _e(_t("sync", lang)) + '</h2><table class="kv">']
    for key, value in (("accepted", _number(v.accepted)), ("delivered", _number(v.delivered)),
                       ("failed", _number(v.failed)),
                       ("lag", f"{duration(v.lag_p50)} / {duration(v.lag_p95)}"),
                       ("oldest", duration(v.oldest_pending_age))):
        out.append(f"<tr><th>{_e(_t(key, lang))}</th><td>{_e(value)}</td></tr>")
    out.append(f"</table><h3>{_e(_t('queue', lang))}</h3>"
               f"<table><tr><th>{_e(_t('state', lang))}</th><th>{_e(_t('dossiers', lang))}</th></tr>")
    for state, n in sorted(v.by_state.items()):
        name = STATE_NAMES.get(state, {}).get(lang, state)
        out.append(f"<tr><td>{_e(name)}</td><td class='n'>{_e(_number(n))}</td></tr>")
    out.append("</table></section>")
    return out


def _circuit(v: StatusView, lang: str) -> list[str]:
    portal = _portal(v)
    storage = v.readiness.get("checks", {}).get("storage", {})
    circuit = str(portal.get("circuit", "closed"))
    text = _t({"closed": "circuit_closed", "open": "circuit_open"}.get(circuit, "circuit_half_open"), lang)
    out = [f'<section id="circuit"><h2>{_e(_t("circuit", lang))}</h2><table class="kv">',
           f'<tr><th>{_e(_t("state", lang))}</th><td class="{"ok" if circuit == "closed" else "bad"}">'
           f"{_e(text)}</td></tr>"]
    if portal.get("reason"):
        out.append(f"<tr><th>{_e(_t('reason', lang))}</th><td>{_e(portal['reason'])}</td></tr>")
    out.append(f"<tr><th>{_e(_t('failures', lang))}</th><td>{_e(portal.get('consecutive_failures', 0))}</td></tr>")
    if portal.get("reopens_at"):
        out.append(f"<tr><th>{_e(_t('reopens', lang))}</th><td>{_e(portal['reopens_at'])}</td></tr>")
    error = f" ({_e(storage['error'])})" if storage.get("error") else ""
    out.append(f"<tr><th>{_e(_t('checks', lang))}</th><td>storage: {_e(storage.get('status', '—'))}{error}</td></tr>")
    out.append("</table></section>")
    return out


def _dead(v: StatusView, lang: str) -> list[str]:
    out = [f'<section id="dead-letters"><h2>{_e(_t("dead", lang))}: {_e(_number(v.dead_total))}</h2>']
    if not v.dead:
        out.append(f"<p>{_e(_t('dead_none', lang))}</p></section>")
        return out
    out.append("<table><tr>" + "".join(f"<th>{_e(_t(k, lang))}</th>"
                                      for k in ("class", "code", "count", "latest", "message")) + "</tr>")
    for g in v.dead:
        out.append(f"<tr><td>{_e(g.cls)}</td><td>{_e(g.code)}</td><td class='n'>{_e(_number(g.count))}</td>"
                   f"<td>{_e(_when(g.latest, v.tz_hours))}</td><td>{_e(mask(g.message))}</td></tr>")
    out.append("</table>")
    if v.dead_scanned_limit is not None:
        out.append(f"<p class='note'>({_e(_t('dead_more', lang).format(n=v.dead_scanned_limit))})</p>")
    out.append("</section>")
    return out


def _kpi(v: StatusView, lang: str) -> list[str]:
    out = [f'<section id="kpi"><h2>{_e(_t("kpi", lang))}</h2>']
    if not v.kpi:
        out.append(f"<p>{_e(_t('kpi_none', lang))}</p></section>")
        return out
    out.append(f"<p class='note'>{_e(_t('kpi_note', lang))}</p><div class='charts'>")
    by_indicator: dict[str, list[KpiBar]] = {}
    for bar in v.kpi:
        by_indicator.setdefault(bar.indicator, []).append(bar)
    for indicator, bars in by_indicator.items():
        name = KPI_NAMES.get(indicator, {}).get(lang, indicator)
        first = bars[0]
        notes = []
        if first.score is not None and first.max_points:
            notes.append(f"{first.score:.2f}/{first.max_points:g} {_t('points', lang)}")
        if first.target is not None:
            notes.append(f"{_t('target', lang)} {first.target * 100:.0f} %")
        out.append(f'<figure id="kpi-{_e(indicator)}"><figcaption><b>{_e(name)}</b> <code>{_e(indicator)}</code>'
                   f'<br><small>{_e(" · ".join(notes))}</small></figcaption>{kpi_chart(bars, lang)}</figure>')
    out.append("</div></section>")
    return out


_CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:1.2em;color:#212121;max-width:1100px}
header{display:flex;justify-content:space-between;align-items:baseline}
h1{font-size:1.4em;margin:0}h2{font-size:1.15em;border-bottom:1px solid #cfd8dc;padding-bottom:.2em}
h3{font-size:1em}.meta{color:#546e7a;font-size:.9em}
.banner{padding:.6em .9em;border-radius:4px;margin:.5em 0;font-weight:bold}
.banner.ok{background:#e8f5e9;color:#1b5e20}.banner.bad{background:#ffebee;color:#b71c1c}
td.ok{color:#1b5e20}td.bad{color:#b71c1c;font-weight:bold}
table{border-collapse:collapse;margin:.4em 0}td,th{padding:.25em .7em;border-bottom:1px solid #eceff1;text-align:left}
td.n{text-align:right}.kv th{color:#455a64;font-weight:normal}.note{color:#546e7a;font-size:.85em}
.charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0;border:1px solid #eceff1;padding:.5em}
figcaption{font-size:.9em;margin-bottom:.3em}
"""
