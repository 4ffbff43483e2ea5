"""Pure envelope rules of the national-portal adapter (spec §2.4, §3.1, §5, §9, RFC 9110)."""

from __future__ import annotations

import base64
import email.utils
import unicodedata

import pytest

from adapters.national_portal import envelope
from adapters.national_portal.envelope import Verdict
from core.errors import PortalAuthFailed, PortalUnavailable


@pytest.mark.parametrize("code", [0, "0", "00", " 0 ", "000", "-0"])
def test_zero_error_codes_are_success(code: object) -> None:
    """§2.4: a trimmed error_code that parses as the integer 0 means success."""
    assert envelope.is_ok(code)


@pytest.mark.parametrize("code", [1, "-1", "3", "", None, "OK", True, "0x0"])
def test_other_error_codes_are_failure(code: object) -> None:
    """§2.4: anything that is not integer 0 is not OK (booleans and absent codes included)."""
    assert not envelope.is_ok(code)


@pytest.mark.parametrize("code", ["0", "3", "-3", 3, -3, 0])
def test_already_exists_needs_code_and_text(code: object) -> None:
    """§5.6: "đã tồn tại" with code in {0, 3, -3} is EXISTS, whatever Unicode form or case."""
    decomposed = unicodedata.normalize("NFD", "Hồ sơ X ĐÃ TỒN TẠI trên hệ thống")
    assert envelope.verdict({"error_code": code, "message": decomposed}) is Verdict.EXISTS


def test_already_exists_text_with_other_code_is_rejection() -> None:
    """§5.6: the text alone is not enough; code "-4" with "đã tồn tại" is a plain rejection."""
    assert envelope.verdict({"error_code": "-4", "message": "đã tồn tại"}) is Verdict.REJECTED


@pytest.mark.parametrize(
    "message",
    ["Phiên làm việc đã hết hạn", "Invalid SESSION", "Vui lòng đăng nhập lại", "login required"],
)
def test_session_words_in_a_failure_mean_session_expired(message: str) -> None:
    """§2.5 heuristic: a non-zero reply mentioning phiên/session/đăng nhập/login → log in again."""
    assert envelope.verdict({"error_code": "-1", "message": message}) is Verdict.SESSION_EXPIRED


def test_session_words_in_a_success_are_success() -> None:
    """A zero error_code is success even if the message talks about the session."""
    assert envelope.verdict({"error_code": "00", "message": "Phiên hợp lệ"}) is Verdict.OK


def test_service_body_flattens_parameters() -> None:
    """§2.3: session, madonvi and service sit beside the flattened parameters."""
    body = envelope.service_body("TraCuuHoSo", envelope.lookup_params("X-1"), madonvi="M", session="S")
    assert body == {"session": "S", "madonvi": "M", "service": "TraCuuHoSo", "mahoso": "X-1"}
    assert "session" not in envelope.service_body("TraCuuHoSo", {}, madonvi="M", session=None)


def test_is_updating_is_a_string() -> None:
    """§5.1: isUpdating is the string "True"/"False", never a JSON boolean."""
    assert envelope.sync_params([{"MaHoSo": "a"}], updating=True)["isUpdating"] == "True"
    assert envelope.sync_params([{"MaHoSo": "a"}], updating=False)["isUpdating"] == "False"


def test_more_than_ten_progress_items_is_a_value_error() -> None:
    """§5.2: at most 10 progress items per call; 10 pass, 11 raise ValueError."""
    assert len(envelope.progress_params([{}] * 10)["data"]) == 10
    with pytest.raises(ValueError):
        envelope.progress_params([{}] * 11)


@pytest.mark.parametrize("body", [b"<html>502</html>", b"", b"[1,2]", b"\xff\xfe", b'"text"'])
def test_non_object_bodies_are_unavailable(body: bytes) -> None:
    """§9: HTML, empty, non-UTF-8 or non-object bodies mean broken upstream (retryable)."""
    with pytest.raises(PortalUnavailable):
        envelope.decode_json_object(body, what="t")


def test_login_needs_zero_code_and_session() -> None:
    """§2.2: success = error_code 0 AND a session; otherwise PortalAuthFailed with the message."""
    assert envelope.session_from_login({"error_code": 0, "session": "abc"}) == "abc"
    with pytest.raises(PortalAuthFailed):
        envelope.session_from_login({"error_code": 0, "message": "ok"})
    with pytest.raises(PortalAuthFailed) as info:
        envelope.session_from_login({"error_code": "1", "message": "Sai mật khẩu", "session": "x"})
    assert info.value.code == "1" and info.value.portal_message == "Sai mật khẩu"


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        (email.utils.formatdate(NOW + 90, usegmt=True), 90.0),
        (email.utils.formatdate(NOW - 90, usegmt=True), 0.0),
        (None, None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("²", None),  # str.isdigit() took it and int() raised (Hypothesis, tests/fuzz)
        ("9" * 400, None),  # float() overflowed
        ("1" * 5000, None),  # past int()'s digit limit
        ("9999999999", 9999999999.0),
    ],
)
def test_retry_after_delta_seconds_or_http_date(value: str | None, expected: float | None) -> None:
    """RFC 9110: Retry-After is delta-seconds or an HTTP-date (a past date = 0); else None."""
    assert envelope.parse_retry_after(value, now=NOW) == expected


def test_token_request_basic_and_form() -> None:
    """§3.1: Basic client auth, or client_id/client_secret in the form body."""
    basic = envelope.token_request("id", "s:ecret", client_auth="basic")
    assert basic.form == {"grant_type": "client_credentials"}
    assert base64.b64decode(basic.headers["Authorization"][6:]) == b"id:s:ecret"
    form = envelope.token_request("id", "sec", client_auth="form")
    assert form.form == {"grant_type": "client_credentials", "client_id": "id", "client_secret": "sec"}
    assert "Authorization" not in form.headers


def test_token_kept_until_sixty_seconds_before_expiry() -> None:
    """§3.2: reuse until expires_in − 60 s; the header uses token_type as sent."""
    token = envelope.parse_token({"access_token": "T", "token_type": "bearer", "expires_in": 3600})
    assert token.header_value == "bearer T" and token.usable_for == 3540
    assert envelope.parse_token({"access_token": "T", "expires_in": 60}).usable_for == 30
    with pytest.raises(PortalAuthFailed):
        envelope.parse_token({"token_type": "Bearer"})


@pytest.mark.parametrize(("reply", "expected"), [
    ({"error_code": "-5", "message": "Hồ sơ 000.00.01.H55-240315-00012 không tồn tại trên hệ thống"},
     envelope.Verdict.NOT_FOUND),
    ({"error_code": "-1", "message": "HỒ SƠ KHÔNG TỒN TẠI"}, envelope.Verdict.NOT_FOUND),
    ({"error_code": "-5", "message": "Mã TTHC không tồn tại"}, envelope.Verdict.REJECTED),
    ({"error_code": "0", "message": "Hồ sơ không tồn tại"}, envelope.Verdict.OK),
    ({"error_code": "-3", "message": "Hồ sơ đã tồn tại"}, envelope.Verdict.EXISTS),
])
def test_a_reply_saying_the_dossier_does_not_exist(reply: dict[str, str], expected: envelope.Verdict) -> None:
    """Only a non-zero reply that names the dossier ("hồ sơ") and says "không tồn tại" means the
    portal lacks it; an unknown procedure code stays a rejection, and "đã tồn tại" stays "exists"."""
    assert envelope.verdict(reply) is expected
