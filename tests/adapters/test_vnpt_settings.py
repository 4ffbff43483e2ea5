"""[receipts] settings: typed, frozen, defaults in config/example.toml, mistakes name their key,
secrets from *_file."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.schema import ReceiptsSettings, load
from core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.toml"
# secrets never inline in a settings file (docs/security.md): from the environment here
ENABLED = "[receipts]\nenabled = true\nbase_url = 'https://t.example'\naccount = 'a'\nacpass_env = 'ACPASS'\n" \
          "username = 'u'\npassword_env = 'PW'\n"
ENV = {"ACPASS": "b", "PW": "p"}


def test_the_example_file_carries_the_defaults() -> None:
    """config/example.toml's [receipts] is exactly the defaults (off)."""
    assert load(EXAMPLE, environ={}).receipts == ReceiptsSettings()
    assert ReceiptsSettings().enabled is False and ReceiptsSettings().payment_method_text == "code"


@pytest.mark.parametrize(("text", "key"), [
    ("[receipts]\nenabled = true\n", "receipts.base_url"),
    (ENABLED.replace("acpass_env = 'ACPASS'\n", ""), "receipts.acpass"),
    (ENABLED.replace("password_env = 'PW'\n", ""), "receipts.password"),
    ("[receipts]\npattern = '01BLP0/001'\n", "receipts.serial"),
    ("[receipts]\nbase_url = 'ftp://t'\n", "receipts.base_url"),
    ("[receipts]\npublish_path = 'PublishService.asmx'\n", "receipts.publish_path"),
    ("[receipts]\nmax_concurrency = 0\n", "receipts.max_concurrency"),
    ("[receipts]\npayment_method_text = 'both'\n", "receipts.payment_method_text"),
    ("[receipts]\ntimeout = '10m'\n", "receipts.timeout"),
    ("[receipts]\nwsdl = 'x'\n", "receipts.wsdl"),
])
def test_bad_receipts_settings_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    """Each mistake stops loading with a ConfigError naming the dotted key."""
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(f, environ=ENV)
    assert info.value.key == key, str(info.value)


def test_secrets_come_from_files_and_addresses_from_base_url(tmp_path: Path) -> None:
    """acpass_file / password_file like every other secret; each service at base_url + its path."""
    (tmp_path / "acpass").write_text("admin-secret\n")
    (tmp_path / "pw").write_text("service-secret\n")
    f = tmp_path / "s.toml"
    f.write_text(ENABLED.replace("acpass_env = 'ACPASS'\n", f"acpass_file = '{tmp_path / 'acpass'}'\n")
                 .replace("password_env = 'PW'\n", f"password_file = '{tmp_path / 'pw'}'\n")
                 .replace("'https://t.example'", "'https://t.example/'") + "publish_path = '/publishservice.asmx'\n"
                 + "portal_wsdl = '/etc/dvcgw/vnpt/portal.wsdl'\n")
    s = load(f, environ={}).receipts
    assert (s.acpass, s.password) == ("admin-secret", "service-secret")
    assert s.address_of("PublishService") == "https://t.example/publishservice.asmx"
    assert s.address_of("BusinessService") == "https://t.example/BusinessService.asmx"
    assert s.wsdl_for("PortalService") == "/etc/dvcgw/vnpt/portal.wsdl" and s.wsdl_for("PublishService") == ""
    with pytest.raises(KeyError):
        s.address_of("Publish")
