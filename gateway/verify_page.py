"""``/verify``: a plain HTML form for citizens and clerks to check a certified copy (Vietnamese,
usable on a phone, no JavaScript). ``GET`` shows the form; ``POST`` (multipart ``file``) runs the
same checks as ``POST /v1/certifications/verify`` and shows the verdict. Open, no key; only the
record's public part is shown."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from aiohttp import web

from core.errors import ValidationError
from gateway.signing_routes import read_pdf_request
from signing.certification.verify import verify
from signing.errors import SigningError

_VERDICTS = {
    "valid": ("ok", "HỢP LỆ", "Bản sao đúng với bản sao điện tử đã được chứng thực và còn hiệu lực."),
    "revoked": ("warn", "ĐÃ BỊ THU HỒI", "Bản chứng thực này đã bị thu hồi; không còn giá trị sử dụng."),
    "invalid": ("bad", "KHÔNG HỢP LỆ", "Tệp không phải là bản sao chứng thực đã cấp, hoặc đã bị thay đổi."),
    "unknown": ("bad", "KHÔNG TÌM THẤY", "Không có bản chứng thực nào trong sổ khớp với tệp này."),
}
_REASONS = {
    "NOT_FOUND": "Không tìm thấy số chứng thực trong sổ",
    "HASH_MISMATCH": "Nội dung tệp khác với bản đã chứng thực",
    "RECORD_REVOKED": "Bản chứng thực đã bị thu hồi",
    "RECORD_VOID": "Số chứng thực đã bị hủy",
    "SIGNATURE_INVALID": "Chữ ký số không hợp lệ",
    "SIGNATURE_INDETERMINATE": "Chưa xác định được hiệu lực của chữ ký số",
    "SIGNER_MISMATCH": "Chữ ký số không phải của cơ quan đã chứng thực",
    "BLOCK_MISMATCH": "Số, quyển số hoặc ngày in trên bản sao khác với sổ",
    "MODIFIED_AFTER_SIGNING": "Tệp đã bị sửa sau khi ký",
    "BLOCK_NOT_CHECKED": "Chưa đọc được lời chứng trên trang cuối",
}
_FIELDS = (("cert_number", "Số chứng thực"), ("book_name", "Quyển số"), ("certified_at", "Ngày chứng thực"),
           ("authority_name", "Cơ quan chứng thực"), ("document_name", "Tên giấy tờ"), ("page_count", "Số trang"),
           ("revoked_at", "Ngày thu hồi"), ("revocation_reason", "Lý do thu hồi"))
_STYLE = """body{font-family:system-ui,sans-serif;margin:0;padding:16px;max-width:640px;line-height:1.5}
h1{font-size:1.3em}form{margin:1em 0}input[type=file]{display:block;margin:.5em 0 1em;max-width:100%}
button{font-size:1.1em;padding:.6em 1.4em}.verdict{padding:12px;border-radius:6px;margin:1em 0}
.ok{background:#e3f4e3;border:2px solid #2e7d32}.warn{background:#fff4e0;border:2px solid #e65100}
.bad{background:#fde7e7;border:2px solid #c62828}dt{font-weight:bold}dd{margin:0 0 .5em 0}"""


def add_routes(app: web.Application) -> None:
    app.router.add_get("/verify", get_form)
    app.router.add_post("/verify", post_form)


def _page(body: str, status: int = 200) -> web.Response:
    html = ("<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>Kiểm tra bản sao chứng thực điện tử</title><style>{_STYLE}</style></head><body>"
            "<h1>Kiểm tra bản sao chứng thực điện tử</h1>"
            f"{body}{_FORM}</body></html>")
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


_FORM = ("<form method=\"post\" action=\"/verify\" enctype=\"multipart/form-data\">"
         "<label for=\"file\">Chọn tệp PDF bản sao chứng thực:</label>"
         "<input type=\"file\" id=\"file\" name=\"file\" accept=\"application/pdf,.pdf\" required>"
         "<button type=\"submit\">Kiểm tra</button></form>")


async def get_form(request: web.Request) -> web.Response:
    return _page("<p>Tải lên bản sao điện tử (tệp PDF) để kiểm tra số chứng thực, chữ ký số và nội dung.</p>")


async def post_form(request: web.Request) -> web.Response:
    from gateway.certification_routes import CERTIFICATION

    service = request.app[CERTIFICATION]
    try:
        pdf, _ = await read_pdf_request(request, service.signing.settings.max_pdf_bytes)
        result = await verify(service.register, service.signing, pdf)
    except (SigningError, ValidationError) as exc:
        message = exc.message if isinstance(exc, SigningError) else "Chưa chọn tệp PDF."
        return _page(f"<div class=\"verdict bad\" id=\"verdict\"><strong>KHÔNG ĐỌC ĐƯỢC TỆP</strong>"
                     f"<p>{escape(message)}</p></div>", status=422)
    return _page(render(result))


def _shown(key: str, value: Any) -> str:
    """Dates as a Vietnamese reader writes them (dd/MM/yyyy HH:mm, Vietnam time as recorded)."""
    if key in ("certified_at", "revoked_at"):
        try:
            return datetime.fromisoformat(str(value)).strftime("%d/%m/%Y %H:%M")
        except ValueError:
            return str(value)
    return str(value)


def render(result: dict[str, Any]) -> str:
    css, title, text = _VERDICTS[result["verdict"]]
    reasons = "".join(f"<li>{escape(_REASONS.get(r['code'], r['code']))}</li>" for r in result["reasons"])
    out = (f"<div class=\"verdict {css}\" id=\"verdict\" data-verdict=\"{result['verdict']}\">"
           f"<strong>{title}</strong><p>{text}</p>" + (f"<ul>{reasons}</ul>" if reasons else "") + "</div>")
    record = result.get("record")
    if record:
        rows = "".join(f"<dt>{label}</dt><dd>{escape(_shown(key, record[key]))}</dd>"
                       for key, label in _FIELDS if record.get(key) not in (None, ""))
        out += f"<dl>{rows}</dl>"
    return out
