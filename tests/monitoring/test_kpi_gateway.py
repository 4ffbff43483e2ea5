"""The 766 indicators end to end: a synthetic month of dossiers pushed through the real gateway
(HTTP API, SQLite queue, sync engine, the sandbox portal), with every rate and score computed by
hand below; the figures after a restart; DOSSIER_SYNC with an injected clock; GET /v1/kpi,
/metrics and ``dvcgw kpi``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from config.schema import Settings
from gateway import cli
from gateway.appkeys import KPI, METRICS
from monitoring.kpi import KpiReport, KpiRow, parse_period
from monitoring.kpi.store import open_reader
from tests.fakes.portal import FakeClock
from tests.harness import AGENCY_KEY, OPERATOR_KEY, OTHER_KEY, Gateway, Sandbox, run_gateway, settings_for
from tests.monitoring.kpi_helpers import UNIT_A, UNIT_B, code, document, dossier, fee, local, result, step, supplement

NOW = local("20261120120000")  # 20 Nov 2026, noon in Hà Nội: the current month is 2026-11
HOUR = 3600.0


def kpi_settings(tmp_path: Path, sandbox: Sandbox, **kpi: Any) -> Settings:
    return settings_for(tmp_path, sandbox.url, portal={"lookup_before_create": False},
                        kpi={"population_db_codes": ["7"], **kpi})


@pytest.fixture
async def gw(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with run_gateway(kpi_settings(tmp_path, sandbox), FakeClock(start=NOW)) as g:
        yield g


# ------------------------------------------------------------------------ the synthetic month

DUE = "20261110170000"  # NgayHenTra of most dossiers: 10 Nov, 17:00
DOC, LINK = document(), result()


@dataclass
class Case:
    """One dossier: its snapshot fields and its progress (status, ThoiDiemXuLy)."""

    unit: str
    n: int
    fields: dict[str, Any]
    steps: tuple[tuple[str, str], ...] = ()

    @property
    def mahoso(self) -> str:
        return code(self.unit, self.n)


RECEIVED = ("2", "20261103080000")
MONTH = [
    # A1 finished early; online, VNeID, fee paid on DVCQG, a submitted file, result link, digitised components
    Case(UNIT_A, 1, {"KenhThucHien": "2", "TaiKhoanDuocXacThucVoiVNeID": "1", "DanhSachLePhi": [fee("50000")],
                     "DuocThanhToanTrucTuyen": "1", "TaiLieuNop": [DOC], "DanhSachGiayToKetQua": [LINK],
                     "HoSoCoThanhPhanSoHoa": "1", "TrangThaiHoSo": "9"},
         (RECEIVED, ("4", "20261104090000"), ("9", "20261109090000"))),
    # A2 finished 2 days late; fee not paid online; a file but no result link
    Case(UNIT_A, 2, {"DanhSachLePhi": [fee("30000")], "TaiLieuNop": [DOC], "TrangThaiHoSo": "9"},
         (RECEIVED, ("4", "20261104090000"), ("9", "20261112090000"))),
    # A3 finished 2 days late, but the citizen took 3 days over a supplement: on time; online; a
    # document from the citizen's store on DVCQG; result link
    Case(UNIT_A, 3, {"KenhThucHien": "2", "TaiLieuNop": [document(DuocLayTuKhoDMQG="1")],
                     "DanhSachGiayToKetQua": [LINK], "TrangThaiHoSo": "9",
                     "DanhSachHoSoBoSung": [supplement("20261104090000", "20261107090000")]},
         (RECEIVED, ("5", "20261104090000"), ("4", "20261107090000"), ("9", "20261112170000"))),
    # A4 two supplement requests and no end: late, though due only on 30 Nov
    Case(UNIT_A, 4, {"NgayHenTra": "20261130170000", "TrangThaiHoSo": "5"},
         (RECEIVED, ("5", "20261104090000"), ("4", "20261105090000"), ("5", "20261106090000"))),
    # A5 in processing, due 25 Nov: on time on 20 Nov
    Case(UNIT_A, 5, {"NgayHenTra": "20261125170000"}, (RECEIVED, ("4", "20261104090000"))),
    # A6 in processing, due 15 Nov: late on 20 Nov
    Case(UNIT_A, 6, {"NgayHenTra": "20261115170000"}, (RECEIVED, ("4", "20261104090000"))),
    # A7 its only fee row is 0: not fee-bearing, so its payment flag counts nowhere; in processing, due 25 Nov
    Case(UNIT_A, 7, {"DanhSachLePhi": [fee("0")], "DuocThanhToanTrucTuyen": "1", "NgayHenTra": "20261125170000",
                     "TrangThaiHoSo": "2"}, (RECEIVED,)),
    # A8 result returned early; online; fee paid through the province's gateway; population database "7"
    Case(UNIT_A, 8, {"KenhThucHien": "2", "DanhSachLePhi": [fee("100000")], "DuocThanhToanTrucTuyen": "2",
                     "DSKetNoiCSDL": [{"MaCSDL": "7"}], "TrangThaiHoSo": "10"},
         (RECEIVED, ("4", "20261104090000"), ("10", "20261109090000"))),
    # A9 no NgayHenTra (no deadline): on time by the default policy; finished; digitised components
    Case(UNIT_A, 9, {"NgayHenTra": "", "HoSoCoThanhPhanSoHoa": "1", "TrangThaiHoSo": "9"},
         (RECEIVED, ("9", "20261118090000"))),
    # B1 (the other unit) finished early; online; VNeID
    Case(UNIT_B, 1, {"KenhThucHien": "2", "TaiKhoanDuocXacThucVoiVNeID": "1", "TrangThaiHoSo": "9"},
         (RECEIVED, ("9", "20261105090000"))),
    # B2 received in October: in the quarter and the year, not in the month
    Case(UNIT_B, 2, {"NgayTiepNhan": "20261015080000", "NgayNopHoSo": "20261015080000",
                     "NgayHenTra": "20261020170000", "TrangThaiHoSo": "9"},
         (("2", "20261015080000"), ("9", "20261016090000"))),
]
# A10 finished early, but the gateway delivered it two hours after accepting it (sync late)
LATE_SYNC = Case(UNIT_A, 10, {"TaiLieuNop": [DOC], "DanhSachGiayToKetQua": [LINK], "TrangThaiHoSo": "9"},
                 (RECEIVED, ("4", "20261104090000"), ("9", "20261108090000")))
# A11 the portal refused its snapshot (dead letter): still in the provincial system, never synced;
# in processing, due 25 Nov
REFUSED = Case(UNIT_A, 11, {"NgayHenTra": "20261125170000", "TrangThaiHoSo": "2"})


async def send(gw: Gateway, case: Case) -> None:
    fields = dict(case.fields)
    body = dossier(case.mahoso, due=fields.pop("NgayHenTra", DUE), **fields)
    r = await gw.put(case.mahoso, body, key=AGENCY_KEY if case.unit == UNIT_A else OTHER_KEY)
    assert r.status == 202, await r.text()
    if case.steps:
        await send_steps(gw, case)


async def send_steps(gw: Gateway, case: Case) -> None:
    key = AGENCY_KEY if case.unit == UNIT_A else OTHER_KEY
    r = await gw.progress(case.mahoso, [step(case.mahoso, s, at) for s, at in case.steps], key=key)
    assert r.status == 202, await r.text()


async def push_the_month(gw: Gateway, sandbox: Sandbox) -> None:
    """Everything through the real API and engine; the engine driven until idle each time."""
    for case in MONTH:
        await send(gw, case)
    await gw.drain()
    await sandbox.fault(mode="reject", count=1, message="Mã thủ tục không tồn tại trên Cổng DVCQG")
    await send(gw, REFUSED)
    await gw.drain()
    await send(gw, LATE_SYNC)
    gw.clock.advance(2 * HOUR)  # delivered 2 h after it was accepted; A11 waits 2 h, undelivered
    await gw.drain()


def by(rows: list[KpiRow], unit: str, period: str) -> dict[str, KpiRow]:
    return {r.indicator: r for r in rows if r.unit == unit and r.period == period}


def figures(rows: dict[str, KpiRow]) -> dict[str, tuple[int, int]]:
    return {name: (r.numerator, r.denominator) for name, r in rows.items()}


# The hand computation. Unit A, November (A1..A11, 11 dossiers received in the month):
#   DOSSIER_SYNC     late: A10 (delivered 2 h after acceptance), A11 (refused, waiting 2 h)  -> 9/11
#   ON_TIME          on time A1, A3 (12 Nov 17:00 − 3 days supplement = 9 Nov 17:00), A5 (due 25 Nov,
#                    now 20 Nov), A7 (same), A8, A9 (no deadline: on time), A10, A11 (due 25 Nov);
#                    late A2, A4 (two supplement requests, no end), A6 (due 15 Nov, still open)  -> 8/11
#   ONLINE_SHARE     KenhThucHien 2: A1, A3, A8                                                 -> 3/11
#   ORIGINAL_RESULT  finished (9 or 10): A1, A2, A3, A8, A9, A10; with a result link A1, A3, A10 -> 3/6
#   SO_HOA           a submitted file and a result link: A1, A3, A10                             -> 3/11
#   REUSED           HoSoCoThanhPhanSoHoa 1: A1, A9                                              -> 2/11
#   SYNCED_STORAGE   DuocLayTuKhoDMQG 1: A3                                                      -> 1/11
#   ONLINE_PAYMENT_A fee-bearing A1, A2, A8 (A7's fee is 0); paid online (1 or 2) A1, A8         -> 2/3
#   CITIZEN_DATA     VNeID A1, DVCQG store A3, population database "7" A8                        -> 3/11
#   VNEID_SHARE      A1                                                                          -> 1/11
UNIT_A_MONTH = {
    "DOSSIER_SYNC": (9, 11), "ON_TIME": (8, 11), "ONLINE_SHARE": (3, 11), "ORIGINAL_RESULT_AVAILABLE": (3, 6),
    "SO_HOA_GIAY_TO_GIAI_QUYET": (3, 11), "REUSED_DIGITIZED_DATA": (2, 11),
    "SYNCED_WITH_DVCQG_PERSONAL_STORAGE": (1, 11), "ONLINE_PAYMENT_A": (2, 3),
    "CITIZEN_DATA_CONNECTED_DOSSIER": (3, 11), "VNEID_SHARE": (1, 11),
}
# Points (kpi-766.md §4): RE linear unless said; ONLINE_SHARE is formula 3.3 (× the sync rate,
# full points at 50 %) over 12 points; REUSED full at 80 %; payment is the A part, 6·A.
UNIT_A_POINTS = {
    "DOSSIER_SYNC": 6 * 9 / 11, "ON_TIME": 20 * 8 / 11, "ONLINE_SHARE": min(12, 12 * (3 / 11) * (9 / 11) / 0.5),
    "ORIGINAL_RESULT_AVAILABLE": 6 * 3 / 6, "SO_HOA_GIAY_TO_GIAI_QUYET": 4 * 3 / 11,
    "REUSED_DIGITIZED_DATA": min(2, 2 * (2 / 11) / 0.8), "SYNCED_WITH_DVCQG_PERSONAL_STORAGE": 4 * 1 / 11,
    "ONLINE_PAYMENT_A": 6 * 2 / 3, "CITIZEN_DATA_CONNECTED_DOSSIER": 2 * 3 / 11, "VNEID_SHARE": 0.0,
}
# Unit B, November: B1 only (B2 was received in October): synced, on time, online, finished
# without a result link, no file, no fee, VNeID.
UNIT_B_MONTH = {
    "DOSSIER_SYNC": (1, 1), "ON_TIME": (1, 1), "ONLINE_SHARE": (1, 1), "ORIGINAL_RESULT_AVAILABLE": (0, 1),
    "SO_HOA_GIAY_TO_GIAI_QUYET": (0, 1), "REUSED_DIGITIZED_DATA": (0, 1),
    "SYNCED_WITH_DVCQG_PERSONAL_STORAGE": (0, 1), "ONLINE_PAYMENT_A": (0, 0),
    "CITIZEN_DATA_CONNECTED_DOSSIER": (1, 1), "VNEID_SHARE": (1, 1),
}
# Unit B, the quarter (and the year): B1 and B2 (finished on time in October, in person).
UNIT_B_QUARTER = {**UNIT_B_MONTH, "DOSSIER_SYNC": (2, 2), "ON_TIME": (2, 2), "ONLINE_SHARE": (1, 2),
                  "ORIGINAL_RESULT_AVAILABLE": (0, 2), "SO_HOA_GIAY_TO_GIAI_QUYET": (0, 2),
                  "REUSED_DIGITIZED_DATA": (0, 2), "SYNCED_WITH_DVCQG_PERSONAL_STORAGE": (0, 2),
                  "CITIZEN_DATA_CONNECTED_DOSSIER": (1, 2), "VNEID_SHARE": (1, 2)}


def province(*units: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    return {k: (sum(u[k][0] for u in units), sum(u[k][1] for u in units)) for k in units[0]}


def assert_the_month(report: KpiReport) -> None:
    assert report.period_ids == {"month": "2026-11", "quarter": "2026-Q4", "year": "2026"}
    a = by(report.rows, UNIT_A, "month")
    assert figures(a) == UNIT_A_MONTH
    for name, points in UNIT_A_POINTS.items():
        n, d = UNIT_A_MONTH[name]
        assert a[name].ratio == pytest.approx(n / d, abs=1e-12), name
        assert a[name].score == pytest.approx(points, abs=1e-12), name
        assert a[name].estimate is True
    assert figures(by(report.rows, UNIT_B, "month")) == UNIT_B_MONTH
    assert figures(by(report.rows, "all", "month")) == province(UNIT_A_MONTH, UNIT_B_MONTH)
    for period in ("quarter", "year"):
        assert figures(by(report.rows, UNIT_A, period)) == UNIT_A_MONTH
        assert figures(by(report.rows, UNIT_B, period)) == UNIT_B_QUARTER
        assert figures(by(report.rows, "all", period)) == province(UNIT_A_MONTH, UNIT_B_QUARTER)
    bases = {r.indicator: r.basis for r in report.rows}
    assert bases["ONLINE_SHARE"] == "desc" and bases["VNEID_SHARE"] == "gw" and bases["ON_TIME"] == "re"
    assert "END_TO_END_SHARE" not in bases


async def test_a_synthetic_month_gives_the_hand_computed_rates_and_points(gw: Gateway, sandbox: Sandbox) -> None:
    """Eleven dossiers of one unit and two of another, with known on-time, late, supplement-paused,
    two-supplement, in-progress, online, paid and unpaid, digitised, VNeID, late-synced and refused
    cases, through the real gateway: exactly the figures computed by hand above."""
    await push_the_month(gw, sandbox)
    assert (await gw.status(REFUSED.mahoso))["delivery"] == "dead"
    kpi = gw.app[KPI]
    report = await kpi.refresh()
    assert_the_month(report)
    # each period asked alone, on a read-only connection as `dvcgw kpi` reads, gives the same rows
    # as the periodic computation, which counts the three in one pass over the year's rows
    reader = open_reader(kpi.path)
    try:
        for kind, pid in report.period_ids.items():
            scanned = kpi.calc.one(reader, parse_period(pid, kpi.calc.offset_s), None, NOW + 2 * HOUR)
            assert scanned.rows == [r for r in report.rows if r.period == kind]
    finally:
        reader.close()


async def test_the_figures_survive_a_restart(sandbox: Sandbox, tmp_path: Path) -> None:
    """Close the gateway right after the month went through (the facts still buffered: no write
    tick in between, flush_interval 60 s), build a new one on the same files: the same figures.
    Closing writes the buffer; the new instance reads the indicators' own file."""
    settings = kpi_settings(tmp_path, sandbox, flush_interval="60s")
    async with run_gateway(settings, FakeClock(start=NOW)) as first:
        await push_the_month(first, sandbox)
        assert first.app[KPI].buffered > 0
    async with run_gateway(settings, FakeClock(start=NOW + 2 * HOUR)) as second:
        assert_the_month(await second.app[KPI].refresh())


async def test_the_loop_time_of_the_facts_is_counted_at_each_write(sandbox: Sandbox, tmp_path: Path) -> None:
    """``dvcgw_kpi_facts_seconds_total``: the event loop's time reading the facts of the delivered
    events, added when they are written (flush_interval 60 s: not before the write asked here)."""
    async with run_gateway(kpi_settings(tmp_path, sandbox, flush_interval="60s"), FakeClock(start=NOW)) as gw:
        await push_the_month(gw, sandbox)
        kpi, metrics = gw.app[KPI], gw.app[METRICS]
        assert kpi.buffered > 0
        assert metrics.sample("dvcgw_kpi_facts_seconds_total") == 0
        await kpi.flush()
        assert kpi.buffered == 0
        spent = metrics.sample("dvcgw_kpi_facts_seconds_total")
        assert spent is not None and 0 < spent < 5
        await kpi.flush()  # nothing observed since: nothing added
        assert metrics.sample("dvcgw_kpi_facts_seconds_total") == spent


async def test_dossier_sync_counts_what_reached_the_portal_within_the_slo(sandbox: Sandbox,
                                                                         tmp_path: Path) -> None:
    """With an injected clock (SLO 1 h, the default), four dossiers delivered at once, then one
    progress item each: #1's reached the portal 59 min after the gateway accepted it (synced in
    real time), #2's after 61 min (not), #3's call failed and it is still undelivered 61 min on
    (not), #4's call failed too but it has waited only 30 min (not late yet)."""
    clock = FakeClock(start=NOW)
    cases = [Case(UNIT_A, n, {}, (("4", "20261104090000"),)) for n in (1, 2, 3, 4)]
    async with run_gateway(kpi_settings(tmp_path, sandbox), clock) as gw:
        for case in cases:
            await send(gw, Case(UNIT_A, case.n, {}))
        await gw.drain()
        await send_steps(gw, cases[0])
        clock.advance(59 * 60)
        await gw.drain()
        await send_steps(gw, cases[1])
        clock.advance(61 * 60)
        await gw.drain()
        await send_steps(gw, cases[2])
        await sandbox.fault(mode="http503", count=1)
        await gw.drain()
        clock.advance(31 * 60)
        await send_steps(gw, cases[3])
        await sandbox.fault(mode="http503", count=2)  # #3's retry is due again: both calls fail
        await gw.drain()
        clock.advance(30 * 60)
        assert [(await gw.status(c.mahoso))["delivery"] for c in cases] == ["delivered", "delivered", "retrying",
                                                                           "retrying"]
        report = await gw.app[KPI].report("2026-11", UNIT_A)
    sync = by(report.rows, UNIT_A, "month")["DOSSIER_SYNC"]
    assert (sync.numerator, sync.denominator) == (2, 4)
    assert sync.score == pytest.approx(6 * 2 / 4)


# ------------------------------------------------------------------------ reading the figures


async def test_get_kpi_operator_agency_and_bad_parameters(gw: Gateway, sandbox: Sandbox) -> None:
    """The operator reads any unit and the province; an agency its own units only (403 for
    another, and the province); a bad period or unit is a 422 naming the field; no key 401."""
    await push_the_month(gw, sandbox)
    r = await gw.operator("GET", f"/v1/kpi?period=2026-11&unit={UNIT_A}")
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["period"] == {"kind": "month", "id": "2026-11", "start": "2026-11-01T00:00:00+07:00",
                              "end": "2026-12-01T00:00:00+07:00"}
    got = {row["indicator"]: (row["numerator"], row["denominator"]) for row in body["rows"]}
    assert got == UNIT_A_MONTH and body["left_out"] == ["END_TO_END_SHARE"]
    on_time = next(row for row in body["rows"] if row["indicator"] == "ON_TIME")
    assert on_time["max_points"] == 20 and on_time["target"] == 1.0 and on_time["estimate"] is True
    assert on_time["basis"] == "re" and on_time["score"] == pytest.approx(20 * 8 / 11)

    r = await gw.client.get("/v1/kpi", headers={"X-API-Key": AGENCY_KEY})  # default: the current month
    body = await r.json()
    assert r.status == 200 and body["period"]["id"] == "2026-11"
    assert {row["unit"] for row in body["rows"]} == {UNIT_A}
    r = await gw.client.get("/v1/kpi?period=2026-Q4", headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert {(row["unit"], row["period"]) for row in (await r.json())["rows"]} == {(UNIT_B, "quarter")}
    r = await gw.operator("GET", "/v1/kpi?period=2026&unit=all")
    assert {row["unit"] for row in (await r.json())["rows"]} == {"all"}

    for query, status, field in [
        (f"?unit={UNIT_B}", 403, "unit"), ("?unit=all", 403, "unit"), ("?period=2026-13", 422, "period"),
        ("?period=2026-q4", 422, "period"), ("?period=", 422, "period"), ("?unit=H55", 422, "unit"),
        ("?unit=000.00.09.H55", 422, "unit"),
    ]:
        r = await gw.client.get(f"/v1/kpi{query}", headers={"X-API-Key": AGENCY_KEY})
        body = await r.json()
        assert (r.status, [e["field"] for e in body["errors"]]) == (status, [field]), (query, body)
    assert (await gw.client.get("/v1/kpi")).status == 401
    assert (await gw.client.get("/v1/kpi", headers={"X-API-Key": "nope"})).status == 401


async def test_metrics_carry_the_kpi_families(gw: Gateway, sandbox: Sandbox) -> None:
    """After a computation, /metrics holds the dvcgw_kpi766_* families (parsed by the official
    parser) with the same figures, beside the live registry's families."""
    await push_the_month(gw, sandbox)
    await gw.app[KPI].refresh()
    families = {f.name: f for f in text_string_to_metric_families(await (await gw.client.get("/metrics")).text())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for name, f in families.items() if name.startswith("dvcgw_kpi766_") for s in f.samples}

    def value(name: str, **labels: str) -> float:
        return samples[(f"dvcgw_kpi766_{name}", tuple(sorted(labels.items())))]

    a_month = {"indicator": "ON_TIME", "unit": UNIT_A, "period": "month"}
    assert (value("numerator", **a_month), value("denominator", **a_month)) == (8, 11)
    assert value("ratio", **a_month) == pytest.approx(8 / 11)
    assert value("score_estimate", basis="re", **a_month) == pytest.approx(20 * 8 / 11)
    assert value("max_points", indicator="ON_TIME") == 20
    assert value("target_ratio", indicator="ONLINE_SHARE") == 0.8
    assert value("period_info", period="quarter", id="2026-Q4") == 1
    assert value("computed_timestamp_seconds") == NOW + 2 * HOUR
    units = {dict(k[1])["unit"] for k in samples if k[0] == "dvcgw_kpi766_ratio"}
    assert units == {UNIT_A, UNIT_B, "all"}
    assert "dvcgw_events_accepted" in families


async def test_kpi_disabled(sandbox: Sandbox, tmp_path: Path) -> None:
    """[kpi] enabled = false: no file, no families, GET /v1/kpi is a 404 in the house shape."""
    async with run_gateway(kpi_settings(tmp_path, sandbox, enabled=False), FakeClock(start=NOW)) as gw:
        await send(gw, MONTH[0])
        await gw.drain()
        r = await gw.client.get("/v1/kpi", headers={"X-API-Key": OPERATOR_KEY})
        assert r.status == 404 and (await r.json())["error"] == "not_found"
        assert "dvcgw_kpi766_" not in await (await gw.client.get("/metrics")).text()
        assert KPI not in gw.app
    assert not (tmp_path / "kpi.sqlite3").exists()


async def test_dvcgw_kpi_prints_the_table_from_the_file(sandbox: Sandbox, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``dvcgw kpi --config FILE --period 2026-11 --unit U`` reads the indicators' file (read-only,
    while the daemon still runs) and prints one line per indicator."""
    settings = kpi_settings(tmp_path, sandbox)
    conf = tmp_path / "gw.toml"
    conf.write_text(f'[storage]\npath = "{settings.storage.path}"\n[[agencies]]\ncode = "{UNIT_A}"\n'
                    f'api_key_sha256 = "{64 * "0"}"\nunits = ["{UNIT_A}"]\n', encoding="utf-8")  # no secret inline
    async with run_gateway(settings, FakeClock(start=NOW)) as gw:
        await push_the_month(gw, sandbox)
        await gw.app[KPI].flush()
        assert cli.main(["kpi", "--config", str(conf), "--period", "2026-11", "--unit", UNIT_A]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = {line.split()[0]: line.split() for line in out[2:]}
    assert lines["ONLINE_SHARE"][1:4] == [UNIT_A, "3", "11"]
    assert lines["ONLINE_PAYMENT_A"][1:5] == [UNIT_A, "2", "3", "66.67%"]
    assert cli.main(["kpi", "--config", str(conf), "--period", "2026-13"]) == 2
