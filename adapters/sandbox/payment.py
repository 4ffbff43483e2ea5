"""The payment platform's side of the sandbox (spec ``payment-platform.md``), served by
``dvcgw sandbox`` next to the portal. Never expose it publicly.

Platform routes (the gateway's ``[payment] init_url``, ``query_url``, ``bill_url``):

``POST /payment/init``
    INIT. Checks ``MaXacThuc`` (INIT order, the sandbox's secret) and that the ``PhiLePhi`` and
    ``DSKhoanNop`` lines add up to ``SoTien``; answers ``{"error_code": "0", "message":
    "{\\"UrlThanhToan\\": \\"<sandbox>/payment/pay/<MaThamChieu>\\"}"}``. A wrong checksum gets
    ``error_code`` "2", wrong sums "3", a reference already used "4", a configured ``init_error`` that.
``POST /payment/query``
    QUERY. Paid: ``MaLoi`` "00", ``TrangThaiGD`` "1", ``SoTien``, ``MaGiaoDich``, ``MaNganHang``,
    ``ThoiGianGD`` (of the payment); failed: ``MaLoi`` "99", ``TrangThaiGD`` "2"; not paid yet:
    ``MaLoi`` "99", ``TrangThaiGD`` "0"; unknown reference or wrong checksum: ``MaLoi`` "99".
``POST /payment/bill``
    GET_BILL: a small PDF receipt when paid, an empty body otherwise (spec §9: not ready).
``GET /payment/pay/{MaThamChieu}``
    The "payment page" the citizen is sent to: a short HTML page (the operator pays through the
    admin route below).

Admin routes:

``POST /_sandbox/payments/{MaThamChieu}/pay``
    ``{"outcome": "paid" | "failed", "deliver": true, "amount": n, "checksum": "good" | "bad"}``:
    the citizen paid (or failed). The platform builds the CONFIRM (correct checksum unless
    ``"bad"``; ``amount`` overrides ``SoTien``) and, with ``deliver`` (default), POSTs it to the
    callback URL and returns the gateway's acknowledgement; ``"deliver": false`` loses the
    callback (QUERY still tells the truth, so reconciliation must find it).
``POST /_sandbox/payments/{MaThamChieu}/resend``
    Send the last CONFIRM of the transaction again (a replay).
``POST /_sandbox/payments/config``
    Any of ``{"callback_url", "secret", "init_error": {"error_code", "message"} | null}``.
``GET /_sandbox/payments``
    ``{"transactions": {ref: {...}}, "record": [...], "callbacks": [...]}``: what INIT created, every
    platform call received (message type, reference, whether its checksum was right) and every
    CONFIRM sent with the acknowledgement that came back.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from adapters.payment_platform import envelope as env
from adapters.payment_platform.envelope import INIT_ORDER, QUERY_ORDER, Party

DEFAULT_SECRET = "sandbox-payment-secret"
DEFAULT_CALLBACK = "http://127.0.0.1:8080/v1/payments/confirm"

#: a one-page PDF, small and valid enough for any reader
RECEIPT_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>"
               b"endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 144]>>endobj\ntrailer<</Root 1 0 R>>\n"
               b"%%EOF\n")


@dataclass
class PaymentSandbox:
    """The platform's memory: transactions by reference, calls received, callbacks sent."""

    secret: str = DEFAULT_SECRET
    callback_url: str = DEFAULT_CALLBACK
    startup: tuple[str, str] = (DEFAULT_SECRET, DEFAULT_CALLBACK)
    init_error: dict[str, str] | None = None
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    record: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.secret, self.callback_url = self.startup
        self.init_error = None
        self.transactions, self.record, self.callbacks = {}, [], []

    def note(self, kind: str, msg: dict[str, Any], ok: bool) -> None:
        self.record.append({"message": kind, "MaThamChieu": msg.get("MaThamChieu"), "checksum_ok": ok,
                            "at": time.time()})


PAYMENTS = web.AppKey("sandbox_payments", PaymentSandbox)


async def _message(request: web.Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _sums_agree(msg: dict[str, Any]) -> bool:
    info = msg.get("ThongTinBienLai")
    if not isinstance(info, dict):
        return False
    total = str(msg.get("SoTien"))
    try:
        return all(str(sum(int(x["SoTien"]) for x in info[key])) == total for key in ("PhiLePhi", "DSKhoanNop"))
    except (KeyError, TypeError, ValueError):
        return False


def _init_problem(sb: PaymentSandbox, msg: dict[str, Any], ok: bool) -> dict[str, str] | None:
    if not ok:
        return {"error_code": "2", "message": "Sai mã xác thực"}
    if not _sums_agree(msg):
        return {"error_code": "3", "message": "Tổng tiền các khoản nộp không khớp SoTien"}
    if msg.get("MaThamChieu") in sb.transactions:
        return {"error_code": "4", "message": "Mã tham chiếu đã tồn tại"}
    return sb.init_error


async def init(request: web.Request) -> web.Response:
    sb = request.app[PAYMENTS]
    msg = await _message(request)
    ok = env.verify(msg, INIT_ORDER, sb.secret)
    sb.note("INIT", msg, ok)
    problem = _init_problem(sb, msg, ok)
    if problem is not None:
        return web.json_response(problem)
    ref = str(msg["MaThamChieu"])
    sb.transactions[ref] = {"init": msg, "state": "pending", "confirm": None, "bearer": request.headers.get(
        "Authorization", "")}
    url = f"{request.scheme}://{request.host}/payment/pay/{ref}"
    return web.json_response({"error_code": "0", "message": json.dumps({"UrlThanhToan": url})})


def _query_reply(sb: PaymentSandbox, msg: dict[str, Any], ok: bool) -> dict[str, Any]:
    txn = sb.transactions.get(str(msg.get("MaThamChieu")))
    base = {"LoaiBanTin": "QUERY", "MaDoiTac": msg.get("MaDoiTac", ""), "MaThamChieu": msg.get("MaThamChieu", "")}
    if not ok or txn is None:
        return {**base, "MaLoi": "99", "MoTaLoi": "Sai mã xác thực" if not ok else "Không tìm thấy giao dịch"}
    confirm = txn["confirm"] or {}
    status = {"paid": ("00", "1"), "failed": ("99", "2")}.get(txn["state"], ("99", "0"))
    return {**base, "MaLoi": status[0], "TrangThaiGD": status[1], "MoTaLoi": txn["state"],
            "SoTien": int(txn["init"]["SoTien"]), "MaTienTe": "VND", "MaGiaoDich": confirm.get("MaGiaoDich", ""),
            "MaNganHang": confirm.get("MaNganHang", ""), "ThoiGianGD": confirm.get("ThoiGianGD", ""),
            "ThongTinGiaoDich": txn["init"].get("ThongTinGiaoDich", "")}


async def query(request: web.Request) -> web.Response:
    sb = request.app[PAYMENTS]
    msg = await _message(request)
    ok = env.verify(msg, QUERY_ORDER, sb.secret) and msg.get("LoaiBanTin") == "QUERY"
    sb.note("QUERY", msg, ok)
    return web.json_response(_query_reply(sb, msg, ok), dumps=lambda o: json.dumps(o, ensure_ascii=False))


async def bill(request: web.Request) -> web.Response:
    sb = request.app[PAYMENTS]
    msg = await _message(request)
    ok = env.verify(msg, QUERY_ORDER, sb.secret) and msg.get("LoaiBanTin") == "GET_BILL"
    sb.note("GET_BILL", msg, ok)
    txn = sb.transactions.get(str(msg.get("MaThamChieu")))
    paid = ok and txn is not None and txn["state"] == "paid"
    return web.Response(body=RECEIPT_PDF if paid else b"", content_type="application/pdf")


async def pay_page(request: web.Request) -> web.Response:
    ref = request.match_info["ref"]
    known = ref in request.app[PAYMENTS].transactions
    text = (f"Sandbox payment page for {ref}. Pay with: curl -XPOST <sandbox>/_sandbox/payments/{ref}/pay"
            if known else "Unknown transaction")
    return web.Response(text=f"<html><body><p>{text}</p></body></html>", content_type="text/html",
                        status=200 if known else 404)


# ---------------------------------------------------------------- admin


def _confirm_for(sb: PaymentSandbox, txn: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    init_msg = txn["init"]
    paid = body.get("outcome", "paid") == "paid"
    amount = body.get("amount", int(init_msg["SoTien"]))
    msg = env.confirm_message(
        Party(str(init_msg["MaDoiTac"]), sb.secret), ref=str(init_msg["MaThamChieu"]), amount=amount,
        ma_loi="00" if paid else "24", ma_giao_dich=f"PG{secrets.token_hex(6).upper()}", ma_ngan_hang="SANDBOXBANK",
        thoi_gian=env.timestamp(time.time()), thong_tin=str(init_msg.get("ThongTinGiaoDich", "")))
    if body.get("checksum") == "bad":
        msg["MaXacThuc"] = "0" * 64
    return msg


async def _deliver(sb: PaymentSandbox, msg: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"MaThamChieu": msg["MaThamChieu"], "confirm": msg, "at": time.time()}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http, \
                http.post(sb.callback_url, json=msg) as resp:
            entry["status"] = resp.status
            entry["ack"] = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        entry["error"] = f"{type(exc).__name__}: {exc}"
    sb.callbacks.append(entry)
    return entry


async def admin_pay(request: web.Request) -> web.Response:
    sb = request.app[PAYMENTS]
    txn = sb.transactions.get(request.match_info["ref"])
    if txn is None:
        return web.json_response({"error": "unknown MaThamChieu"}, status=404)
    body = await _message(request)
    msg = _confirm_for(sb, txn, body)
    if msg["MaXacThuc"] != "0" * 64 and msg["SoTien"] == int(txn["init"]["SoTien"]):
        txn["state"] = "paid" if msg["MaLoi"] == "00" else "failed"
        txn["confirm"] = msg
    if not body.get("deliver", True):
        return web.json_response({"confirm": msg, "delivered": False})
    entry = await _deliver(sb, msg)
    return web.json_response({"confirm": msg, "delivered": "error" not in entry, **entry},
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


async def admin_resend(request: web.Request) -> web.Response:
    sb = request.app[PAYMENTS]
    txn = sb.transactions.get(request.match_info["ref"])
    if txn is None or txn["confirm"] is None:
        return web.json_response({"error": "no CONFIRM was made for this MaThamChieu"}, status=404)
    entry = await _deliver(sb, txn["confirm"])
    return web.json_response(entry, dumps=lambda o: json.dumps(o, ensure_ascii=False))


async def admin_config(request: web.Request) -> web.Response:
    sb = request.app[PAYMENTS]
    body = await _message(request)
    if not set(body) <= {"callback_url", "secret", "init_error"}:
        return web.json_response({"error": "keys among callback_url, secret, init_error"}, status=400)
    for key, value in body.items():
        setattr(sb, key, value)
    return web.json_response({"callback_url": sb.callback_url, "init_error": sb.init_error})


async def admin_state(request: web.Request) -> web.Response:
    sb = request.app[PAYMENTS]
    return web.json_response({"transactions": sb.transactions, "record": sb.record, "callbacks": sb.callbacks},
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


def add_payment_routes(app: web.Application, *, secret: str = DEFAULT_SECRET,
                       callback_url: str = DEFAULT_CALLBACK) -> None:
    """The payment platform's routes on the sandbox ``app``."""
    app[PAYMENTS] = PaymentSandbox(secret=secret, callback_url=callback_url, startup=(secret, callback_url))
    app.router.add_post("/payment/init", init)
    app.router.add_post("/payment/query", query)
    app.router.add_post("/payment/bill", bill)
    app.router.add_get("/payment/pay/{ref}", pay_page)
    app.router.add_post("/_sandbox/payments/config", admin_config)
    app.router.add_get("/_sandbox/payments", admin_state)
    app.router.add_post("/_sandbox/payments/{ref}/pay", admin_pay)
    app.router.add_post("/_sandbox/payments/{ref}/resend", admin_resend)
