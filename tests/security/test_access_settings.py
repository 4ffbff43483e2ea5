"""The access settings are checked at load (issue 17): each mistake is a ConfigError naming the
key, and a server certificate whose key does not match is refused before the daemon listens."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.schema import load
from core.errors import ConfigError
from gateway.tls import server_context
from tests.security.pki import Pki

AGENCY = "[[agencies]]\ncode = 'A'\nunits = ['000.00.01.H55']\n"
#: the agency's key as a digest: a settings file holds no secret inline (docs/security.md)
KEY = "api_key_sha256 = '0000000000000000000000000000000000000000000000000000000000000000'\n"


def _tls(pki: Pki, mode: str = "optional") -> str:
    return (f"[server]\ntls_cert = '{pki.server.cert_path}'\ntls_key = '{pki.server.key_path}'\n"
            f"client_ca = '{pki.ca.cert_path}'\nclient_cert = '{mode}'\n")


def _cases(pki: Pki) -> list[tuple[str, str]]:
    cert, key, ca = pki.server.cert_path, pki.server.key_path, pki.ca.cert_path
    return [
        (f"[server]\ntls_cert = '{cert}'\n", "server.tls_key"),
        (f"[server]\ntls_cert = '{cert}'\ntls_key = '/no/such.key'\n", "server.tls_key"),
        (f"[server]\nclient_ca = '{ca}'\nclient_cert = 'optional'\n", "server.client_ca"),
        (f"[server]\ntls_cert = '{cert}'\ntls_key = '{key}'\nclient_cert = 'required'\n", "server.client_cert"),
        (f"[server]\ntls_cert = '{cert}'\ntls_key = '{key}'\nclient_ca = '{ca}'\n", "server.client_cert"),
        (f"[server]\ntls_cert = '{cert}'\ntls_key = '{key}'\nclient_cert = 'maybe'\n", "server.client_cert"),
        (AGENCY, "agencies[0].api_key"),  # no key and no certificate mapping
        (AGENCY + KEY + "tls_subjects = ['CN=a']\n", "agencies[0].tls_subjects"),  # no client_cert
        (_tls(pki) + AGENCY + "tls_subjects = ['not a DN']\n", "agencies[0].tls_subjects"),
        (_tls(pki) + AGENCY + "tls_fingerprints = ['AB:CD']\n", "agencies[0].tls_fingerprints"),
        (_tls(pki) + AGENCY + "tls_subjects = ['CN=a']\n[[agencies]]\ncode = 'B'\ntls_subjects = ['CN=a']\n",
         "agencies[1].tls_subjects"),
        (AGENCY + KEY + "procedures = ['1.00 12']\n", "agencies[0].procedures"),
        (AGENCY + KEY + "limits = { rate = -1.0 }\n", "agencies[0].limits.rate"),
        (AGENCY + KEY + "limits = { max_body_bytes = 10 }\n", "agencies[0].limits.max_body_bytes"),
        (AGENCY + KEY + "limits = { burst = 5, typo = 1 }\n", "agencies[0].limits.typo"),
        ("[limits]\nmax_json_depth = 1\n", "limits.max_json_depth"),
        ("[limits]\nmax_concurrent = 0\n", "limits.max_concurrent"),
    ]


def test_each_access_mistake_names_its_key(pki: Pki, tmp_path: Path) -> None:
    """TLS files that go together, client certificates without a CA or a mode, an agency with
    no way in, a mapping the server cannot use, a bad DN, fingerprint or pattern, a subject
    mapped twice, limits out of range: each a ConfigError whose key is the offending path."""
    seen = []
    for i, (text, key) in enumerate(_cases(pki)):
        f = tmp_path / f"s{i}.toml"
        f.write_text(text)
        with pytest.raises(ConfigError) as info:
            load(f, environ={})
        seen.append((info.value.key, key))
    assert [got for got, _ in seen] == [want for _, want in seen]


def test_a_certificate_only_agency_with_a_spelling_of_its_own_loads(pki: Pki, tmp_path: Path) -> None:
    """An agency may have no API key at all; its subject may be written with spaces after the
    commas and its fingerprint as openssl prints it."""
    f = tmp_path / "ok.toml"
    spaced = pki.client.subject.replace(",", ", ")
    f.write_text(_tls(pki, "required") + AGENCY + f"tls_subjects = ['{spaced}']\n"
                 f"tls_fingerprints = ['{pki.pinned.fingerprint}']\nprocedures = ['1.0016*']\n")
    s = load(f, environ={})
    assert s.agencies[0].api_key == "" and s.server.client_cert == "required"
    assert server_context(s.server) is not None


def test_a_key_that_is_not_the_certificate_s_is_refused_at_start(pki: Pki, tmp_path: Path) -> None:
    """tls_key of another certificate: the settings load (both files exist), building the
    listener's context is a ConfigError naming server.tls_key (dvcgw serve and check-config)."""
    f = tmp_path / "s.toml"
    f.write_text(f"[server]\ntls_cert = '{pki.server.cert_path}'\ntls_key = '{pki.client.key_path}'\n")
    with pytest.raises(ConfigError) as info:
        server_context(load(f, environ={}).server)
    assert info.value.key == "server.tls_key"
