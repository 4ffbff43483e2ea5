"""Settings: typed, frozen, read once; unknown keys, wrong types and missing values name the key."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from config.loader import parse_duration
from config.schema import load
from core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.toml"


def test_example_file_loads_with_the_documented_defaults() -> None:
    """config/example.toml is valid, and the public keys carry the documented defaults."""
    s = load(EXAMPLE, environ={})
    assert s.server.listen == "127.0.0.1:8080" and s.server.max_body_bytes == 1048576
    assert s.retry.delays == (5, 30, 120, 600, 1800, 3600) and s.retry.give_up_after == 72 * 3600
    assert s.queue.backend == "sqlite" and s.storage.synchronous == "full"
    assert s.agencies[0].units == ("000.00.01.H55",)
    assert s.dossiers.max_text_chars == 10_000 and s.dossiers.max_combining_marks == 4
    assert s.dossiers.strict_code is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.server.listen = "x"  # type: ignore[misc]


@pytest.mark.parametrize(("text", "key"), [
    ("[server]\nlisen = '127.0.0.1:1'\n", "server.lisen"),
    ("[portal]\nbatch_size = 'ten'\n", "portal.batch_size"),
    ("[retry]\ngive_up_after = '3 days'\n", "retry.give_up_after"),
    ("[queue]\nbackend = 'redis'\n", "queue.backend"),
    ("[[agencies]]\nunits = ['x']\n", "agencies[0].code"),
    ("[[agencies]]\ncode = 'A'\n", "agencies[0].api_key"),
    ("[portal]\nauth = 'oauth2'\n", "portal.token_url"),
    ("[storage]\nsynchronous = 'off'\n", "storage.synchronous"),
    ("[nosuch]\nx = 1\n", "nosuch"),
    ("[queue.kafka]\nfetch_max_wait = '5s'\n", "queue.kafka.fetch_max_wait"),
    ("[queue.kafka]\nfetch_min_bytes = 0\n", "queue.kafka.fetch_min_bytes"),
    ("[dossiers]\nmax_text_chars = 100\n", "dossiers.max_text_chars"),
    ("[dossiers]\nmax_combining_marks = 1000\n", "dossiers.max_combining_marks"),
])
def test_bad_settings_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    """Each mistake stops loading with a ConfigError whose key is the offending dotted path."""
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(f, environ={})
    assert info.value.key == key, str(info.value)


def test_environment_overrides_and_secret_files(tmp_path: Path) -> None:
    """DVCGW_SECTION__KEY overrides the file (parsed as TOML); *_file reads a secret."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    f = tmp_path / "s.toml"
    f.write_text(f"[portal]\nusername = 'u'\npassword_file = '{secret}'\n")
    s = load(f, environ={"DVCGW_PORTAL__BATCH_SIZE": "50", "DVCGW_RETRY__DELAYS": '["1s", "2m"]',
                         "DVCGW_QUEUE__KAFKA__GROUP_ID": "g2", "DVCGW_PORTAL__DSTCODE": "ABC"})
    assert s.portal.password == "s3cret" and s.portal.batch_size == 50
    assert s.retry.delays == (1, 120) and s.queue.kafka.group_id == "g2" and s.portal.dstcode == "ABC"


def test_missing_secret_file_names_the_key(tmp_path: Path) -> None:
    """A *_file that cannot be read is reported under its own key."""
    f = tmp_path / "s.toml"
    f.write_text("[operator]\napi_key_file = '/nonexistent/key'\n")
    with pytest.raises(ConfigError) as info:
        load(f, environ={})
    assert info.value.key == "operator.api_key_file"


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("30s", 30), ("5m", 300), ("2h", 7200),
                                               ("1d", 86400), (15, 15)])
def test_durations(text: str | int, seconds: float) -> None:
    """Durations are strings with a unit (or bare seconds)."""
    assert parse_duration(text) == seconds


def test_check_config_cli(tmp_path: Path) -> None:
    """`dvcgw check-config` exits 0 on a good file and 2, naming the key, on a bad one."""
    ok = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(EXAMPLE)], capture_output=True,
                        text=True, check=False)
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[circuit]\nfailure_treshold = 3\n")
    res = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(bad)], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 2 and "circuit.failure_treshold" in res.stderr


@pytest.mark.parametrize(("text", "key", "says"), [
    ("[server]\nacceptors = 2\n", "server.acceptors", "Kafka"),
    ("[server]\nfast_accept = false\n", "server.fast_accept", "aiohttp"),
    ("[queue]\ndelivery_process = true\n", "queue.delivery_process", "one process"),
    ("[queue]\ndelivery_nice = 10\n", "queue.delivery_nice", "one process"),
    ("[queue]\ndelivery_priority = 'idle'\n", "queue.delivery_priority", "one process"),
    ("[storage]\ncommit_window = '2ms'\n", "storage.commit_window", "commit_max_batch"),
])
def test_removed_keys_are_refused_with_their_replacement(tmp_path: Path, text: str, key: str, says: str) -> None:
    """A key that issue 12 removed stops start-up with a message saying what replaced it, not just
    "unknown key"; set from the environment, it is refused the same way."""
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(f, environ={})
    assert info.value.key == key and "removed" in str(info.value) and says in str(info.value), str(info.value)
    env = "DVCGW_" + key.upper().replace(".", "__")
    with pytest.raises(ConfigError) as info:
        load(None, environ={env: "1"})
    assert info.value.key == key and "removed" in str(info.value)


#: the settings files of these tests give keys as digests: a secret is never inline (docs/security.md)
_K1 = hashlib.sha256(b"k1").hexdigest()
_AGENCY = "[[agencies]]\ncode = '{code}'\napi_key_sha256 = '{key}'\nunits = ['{unit}']\n"


@pytest.mark.parametrize(("text", "key", "says"), [
    ("[portal]\nmadonvi = ''\n", "portal.madonvi", "unit's code"),
    ("[portal]\nmadonvi = 'H55'\n", "portal.madonvi", "unit's code"),
    (_AGENCY.format(code="A", key=_K1, unit="000.00.01.H55")
     + _AGENCY.format(code="B", key=_K1, unit="000.00.02.H55"), "agencies[1].api_key", "agencies[0]"),
    (_AGENCY.format(code="A", key=_K1, unit="000.00.01.H55")
     + f"[[agencies]]\ncode = 'B'\napi_key_sha256 = '{hashlib.sha256(b'k1').hexdigest().upper()}'\n",
     "agencies[1].api_key", "agencies[0]"),
    (_AGENCY.format(code="A", key=_K1, unit="000.00.01.H55") + f"[operator]\napi_key_sha256 = '{_K1}'\n",
     "operator.api_key", "agency"),
    (_AGENCY.format(code="A", key=_K1, unit="hello"), "agencies[0].units", "'hello'"),
    (_AGENCY.format(code="A", key=_K1, unit="000.00.01.H55-1"), "agencies[0].units", "unit code"),
])
def test_configurations_that_must_never_start(tmp_path: Path, text: str, key: str, says: str) -> None:
    """check-config and start-up refuse, naming the key: an empty or malformed sending unit code, two
    agencies with one API key (given plainly or as a digest), an operator key equal to an agency
    key, and a unit code outside the unit-code format (issue 13)."""
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(f, environ={})
    assert info.value.key == key and says in str(info.value), str(info.value)


_RULE_AGENCY = ("[[agencies]]\ncode = 'A'\napi_key_sha256 = '" + _K1 + "'\nunits = ['000.00.01.H55']\n"
                "madinhdanh = {{ '{unit}' = '{code}' }}\n")


@pytest.mark.parametrize(("text", "key", "says"), [
    ("[portal]\ntransport = 'adapter'\n", "portal.auth", "session"),
    ("[portal]\nauth = 'none'\n", "portal.auth", "adapter"),
    ("[portal]\nprovince_code = '56'\n", "portal.province_code", "H56"),
    ("[portal.adapter]\ncreate_url = 'ThemMoi'\n", "portal.adapter.create_url", "path"),
    ("[portal.adapter]\nlookup_url = 'x'\n", "portal.adapter.lookup_url", "path"),
    ("[portal]\ntransport = 'adapter'\nauth = 'none'\n[portal.adapter]\nauth_header = 'X-Key'\n",
     "portal.adapter.auth_header_value", "together"),
    ("[portal.adapter]\nauth_header = 'X-Key'\nauth_header_value_env = 'HEADER_VALUE'\n", "portal.adapter.auth_header",
     "adapter"),
    (_RULE_AGENCY.format(unit="000.00.02.H55", code="000.00.01.H56"), "agencies[0].madinhdanh", "units"),
    (_RULE_AGENCY.format(unit="000.00.01.H55", code="H56"), "agencies[0].madinhdanh", "identifier code"),
    ("[portal]\nprovince_code = 'H56'\n" + _RULE_AGENCY.format(unit="000.00.01.H55", code="000.00.01.H57"),
     "agencies.madinhdanh", "province code"),
    ("[portal]\nprovince_code = 'H56'\ntransport = 'adapter'\nauth = 'none'\n"
     + _RULE_AGENCY.format(unit="000.00.01.H55", code="000.00.01.H56"), "portal.adapter.lookup_url", "TraCuuHoSo"),
])
def test_portal_variants_and_code_rule_settings(tmp_path: Path, text: str, key: str, says: str) -> None:
    """The adapter transport and the §8 code rule refuse what cannot work, naming the key: a
    session with the adapter (no envelope to carry it), auth "none" on the service API, a malformed
    province code or URL map entry, half a static header, a MaDinhDanh for a unit the agency does
    not have, one without the province code, and the rule on an adapter without a lookup (step 5)."""
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(f, environ={"HEADER_VALUE": "v"})
    assert info.value.key == key and says in str(info.value), str(info.value)


def test_adapter_and_code_rule_settings_load(tmp_path: Path) -> None:
    """A complete adapter deployment with the code rule loads; URL map entries are paths after
    adapter_url or whole URLs; the static header's value may come from a file."""
    secret = tmp_path / "key"
    secret.write_text("k-123\n")
    f = tmp_path / "s.toml"
    f.write_text("[portal]\ntransport = 'adapter'\nauth = 'none'\nadapter_url = 'https://a.example/KetNoi'\n"
                 "province_code = 'H56'\n[portal.adapter]\nlookup_url = 'https://b.example/TraCuu'\n"
                 f"auth_header = 'X-Api-Key'\nauth_header_value_file = '{secret}'\n"
                 + _RULE_AGENCY.format(unit="000.00.01.H55", code="000.00.01.H56"))
    s = load(f, environ={})
    a = s.portal.adapter
    assert a.url(s.portal.adapter_url, "create_url") == "https://a.example/KetNoi/adapter/ThemMoi"
    assert a.url(s.portal.adapter_url, "lookup_url") == "https://b.example/TraCuu"
    assert a.auth_header_value == "k-123"
    assert s.unit_identifiers() == {"000.00.01.H55": "000.00.01.H56"}
    assert s.portal.codes_file("var/gw.sqlite3") == Path("var/portal_codes.sqlite3")
