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


@pytest.mark.parametrize(("extra", "key", "words"), [
    ('key = "seal"\nagencies = ["STP"]\nsigning_mode = "both"\n', "certification.authorities[0].signing_mode",
     "not built"),
    ('key = "seal"\nagencies = ["STP"]\nsigning_mode = "certifier"\n', "certification.authorities[0].signing_mode",
     "not built"),
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


def test_good_authority_loads_with_defaults(tmp_path: Path) -> None:
    """A valid authority loads; level B-T and mode authority by default."""
    f = tmp_path / "s.toml"
    f.write_text(BASE + 'key = "seal"\nagencies = ["STP"]\n')
    s = load(f, environ={})
    assert s.certification.level == "B-T" and s.certification.authorities[0].signing_mode == "authority"
