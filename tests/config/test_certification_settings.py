"""[certification] settings: refused loudly when they cannot work (names the key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.schema import load
from core.errors import ConfigError

BASE = """
[[agencies]]
code = "STP"
api_key_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[signing]
trust_roots = ["/dev/null"]

[[signing.keys]]
alias = "seal"
source = "file"
agencies = ["STP"]
pkcs12_file = "/dev/null"

[[signing.keys]]
alias = "far"
source = "remote"
agencies = ["STP"]
url = "http://127.0.0.1:1"
credential_id = "c"
client_secret_file = "/dev/null"

[[certification.authorities]]
code = "H01"
name = "UBND xã A"
"""


CERTIFIER = '\n[[certification.authorities.certifiers]]\nid = "tp-01"\nkey = "{key}"\n'


@pytest.mark.parametrize(("extra", "key", "words"), [
    ('key = "seal"\nagencies = ["STP"]\nsigning_mode = "both"\n', "certification.authorities[0].certifiers",
     "at least one"),
    ('agencies = ["STP"]\nsigning_mode = "certifier"\n', "certification.authorities[0].certifiers",
     "at least one"),
    ('agencies = ["STP"]\nsigning_mode = "both"\n' + CERTIFIER.format(key="far"), "certification.authorities[0].key",
     "needs the authority's key"),
    ('agencies = ["STP"]\n', "certification.authorities[0].key", "needs the authority's key"),
    ('key = "seal"\nagencies = ["STP"]\n' + CERTIFIER.format(key="far"), "certification.authorities[0].certifiers",
     "only used with"),
    ('agencies = ["STP"]\nsigning_mode = "certifier"\n' + CERTIFIER.format(key="nope"),
     "certification.authorities[0].certifiers[0].key", "no [[signing.keys]]"),
    ('agencies = ["STP"]\nsigning_mode = "certifier"\n' + CERTIFIER.format(key="far") + CERTIFIER.format(key="far"),
     "certification.authorities[0].certifiers", "unique"),
    ('key = "nope"\nagencies = ["STP"]\n', "certification.authorities[0].key", "no [[signing.keys]]"),
    ('key = "far"\nagencies = ["STP"]\n', "certification.authorities[0].key", "remote key"),
    ('key = "seal"\nagencies = ["SYT"]\n', "certification.authorities[0].agencies", "no agency"),
    ('key = "seal"\nagencies = []\n', "certification.authorities[0].agencies", "at least one"),
    ('key = "seal"\nagencies = ["STP"]\nsigning_mode = "x"\n', "certification.authorities[0].signing_mode",
     "must be one of"),
])
def test_bad_authorities_are_refused_naming_the_key(tmp_path: Path, extra: str, key: str, words: str) -> None:
    """Modes not built, unknown or remote keys, unknown agencies are ConfigErrors naming the key."""
    f = tmp_path / "s.toml"
    f.write_text(BASE + extra)
    with pytest.raises(ConfigError) as exc:
        load(f, environ={})
    assert exc.value.key.startswith(key.rsplit(".", 1)[0]) and words in str(exc.value), str(exc.value)


def test_certifier_modes_load(tmp_path: Path) -> None:
    """"certifier" needs no authority key; "both" takes both; a certifier's key may be remote."""
    f = tmp_path / "s.toml"
    f.write_text(BASE + 'agencies = ["STP"]\nsigning_mode = "certifier"\n' + CERTIFIER.format(key="far")
                 + '\n[[certification.authorities]]\ncode = "H02"\nname = "UBND xã B"\nkey = "seal"\n'
                 'agencies = ["STP"]\nsigning_mode = "both"\n' + CERTIFIER.format(key="far"))
    a, b = load(f, environ={}).certification.authorities
    assert (a.signing_mode, a.key, a.certifiers[0].key) == ("certifier", "", "far")
    assert (b.signing_mode, b.key, b.certifiers[0].id) == ("both", "seal", "tp-01")


@pytest.mark.parametrize(("schedules", "words"), [
    ('effective_from = "2026-13-01"\n', "YYYY-MM-DD"),
    ('effective_from = "2026-07-01"\ncap = -1\n', "0 or more"),
    ('effective_from = "2026-07-01"\n[[certification.fee_schedules]]\neffective_from = "2026-07-01"\n', "same"),
])
def test_bad_fee_schedules_are_refused(tmp_path: Path, schedules: str, words: str) -> None:
    """A fee schedule with a bad date, a negative amount, or two on one date is refused naming the key."""
    f = tmp_path / "s.toml"
    f.write_text(BASE + 'key = "seal"\nagencies = ["STP"]\n[[certification.fee_schedules]]\n' + schedules)
    with pytest.raises(ConfigError) as exc:
        load(f, environ={})
    assert exc.value.key.startswith("certification.fee_schedules") and words in str(exc.value), str(exc.value)


def test_fee_schedule_loads(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(BASE + 'key = "seal"\nagencies = ["STP"]\n[[certification.fee_schedules]]\n'
                 'effective_from = "2026-07-01"\nfirst_rate = 3000\n')
    [s] = load(f, environ={}).certification.fee_schedules
    assert (s.effective_from, s.first_rate, s.later_rate, s.cap) == ("2026-07-01", 3000, 1000, 200_000)


def test_good_authority_loads_with_defaults(tmp_path: Path) -> None:
    """A valid authority loads; level B-T and mode authority by default."""
    f = tmp_path / "s.toml"
    f.write_text(BASE + 'key = "seal"\nagencies = ["STP"]\n')
    s = load(f, environ={})
    assert s.certification.level == "B-T" and s.certification.authorities[0].signing_mode == "authority"
