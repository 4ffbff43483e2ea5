"""[catalogue], [inbound] and [provincial]: checked at load time, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.schema import load
from core.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path: Path) -> None:
    """The catalogue is on (warn), the puller off, no provincial endpoint; files beside the store."""
    s = load(write(tmp_path, '[storage]\npath = "/srv/dvcgw/gw.sqlite3"\n'))
    assert (s.catalogue.enabled, s.catalogue.strictness, float(s.catalogue.interval)) == (True, "warn", 86400.0)
    assert (s.inbound.enabled, s.provincial.url) == (False, "")
    assert str(s.catalogue.file(s.storage.path)) == "/srv/dvcgw/catalogue.sqlite3"
    assert str(s.inbound.file(s.storage.path)) == "/srv/dvcgw/inbound.sqlite3"


@pytest.mark.parametrize(("text", "key"), [
    ("[inbound]\nenabled = true\n", "provincial.url"),
    ('[inbound]\nparams = ["maDonVi"]\n', "inbound.params"),
    ('[inbound]\nservice = " "\n', "inbound.service"),
    ('[inbound]\ncursor_field = ""\n', "inbound.cursor_field"),
    ("[inbound]\npage_size = 0\n", "inbound.page_size"),
    ('[provincial]\nurl = "ftp://x"\n', "provincial.url"),
    ('[provincial]\nauth_header = "X Key"\n', "provincial.auth_header"),
    ('[catalogue]\nstrictness = "strict"\n', "catalogue.strictness"),
    ('[catalogue]\ninterval = "10s"\n', "catalogue.interval"),
    ('[catalogue]\nevery = "1d"\n', "catalogue.every"),
])
def test_bad_values_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text))
    assert err.value.key == key


def test_the_auth_value_may_come_from_a_file(tmp_path: Path) -> None:
    """auth_value_file: the secret stays out of the settings file; params become a mapping."""
    secret = tmp_path / "token"
    secret.write_text("Bearer s3cr3t\n", encoding="utf-8")
    s = load(write(tmp_path, f'[inbound]\nenabled = true\nparams = ["maDonVi=000.00.01.H55", "loai=1=2"]\n'
                             f'[provincial]\nurl = "https://motcua.example.gov.vn/api/hoso"\n'
                             f'auth_value_file = "{secret}"\n'))
    assert s.provincial.auth_value == "Bearer s3cr3t"
    assert s.inbound.extra_params() == {"maDonVi": "000.00.01.H55", "loai": "1=2"}
