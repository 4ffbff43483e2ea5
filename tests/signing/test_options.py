"""Pure checks of agency signing options and of the remote-signer envelopes."""

from __future__ import annotations

import base64

import pytest

from core.errors import ValidationError
from signing.options import options_from_query, parse_options
from signing.remote import parse_certificates, parse_hash_result, sign_hash_body


def test_defaults_are_b_b_invisible():
    """Only the key is required; the default is an invisible B-B approval signature."""
    o = parse_options({"key": "k"})
    assert (o.level, o.certify, o.docmdp, o.appearance) == ("B-B", False, "form_filling", None)


def test_text_is_nfc_normalised():
    """Decomposed Vietnamese input is normalised to NFC so the font's precomposed glyphs are used."""
    decomposed = "Nguye\u0302\u0303n"
    o = parse_options({"key": "k", "reason": decomposed,
                       "appearance": {"box": [0, 0, 10, 10], "text": "%(n)s", "params": {"n": decomposed}}})
    assert o.reason == "Nguyễn" and o.appearance is not None and o.appearance.params == (("n", "Nguyễn"),)


def test_unknown_placeholder_is_an_error():
    """An appearance text placeholder without a parameter is reported on appearance.text."""
    with pytest.raises(ValidationError) as info:
        parse_options({"key": "k", "appearance": {"box": [0, 0, 10, 10], "text": "%(who)s"}})
    assert [e.field for e in info.value.errors] == ["appearance.text"]


def test_missing_key_and_bad_types_are_all_listed():
    """Every bad field is listed at once."""
    with pytest.raises(ValidationError) as info:
        parse_options({"level": "B-T", "certify": "yes", "reason": 5})
    assert {e.field for e in info.value.errors} == {"key", "certify", "reason"}


def test_query_options_parse_certify():
    """Raw-body requests give options as query strings; certify=true is a boolean."""
    assert options_from_query({"key": "k", "certify": "true"}).certify is True


def test_remote_envelopes():
    """signHash carries one base64 SHA-256 digest; answers are read as signed, pending or rejected."""
    body = sign_hash_body("cred", b"\x01" * 32, "dvcgw:1", "http://127.0.0.1:1/cb")
    assert base64.b64decode(body["hashes"][0]) == b"\x01" * 32 and body["callbackUrl"]
    assert parse_hash_result(200, {"signatures": [base64.b64encode(b"sig").decode()]}).signature == b"sig"
    assert parse_hash_result(202, {"transactionID": "t1"}).state == "pending"
    assert parse_hash_result(200, {"status": "rejected"}).state == "rejected"
    with pytest.raises(Exception, match="certificates"):
        parse_certificates({"cert": {}})
