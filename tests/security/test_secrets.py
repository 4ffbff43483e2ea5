"""Secrets come from files or the environment only, never from the settings file itself (issue
17, Hygiene; docs/security.md "Secrets"), and a refusal never echoes the secret."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from config.schema import SECRET_FIELDS, Settings, load, secret_values
from core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.toml"
#: names that look like a secret's but are not one: references to one (files, variables), digests,
#: labels and identifiers; tls_key is a PEM file's path
# aliases, paths and names of where a secret is, not secrets
NOT_SECRETS = re.compile(r"(_file|_files|_env|_sha256|_label|_id|_header|_mechanism|_username)$"
                         r"|^(key|keys|tls_key|seal_key)$")
LOOKS_SECRET = re.compile(r"(password|passphrase|secret|token|pin|api_key|acpass|auth_value|auth_header_value|_key)$")


@pytest.mark.parametrize(("text", "key"), [
    ("[portal]\npassword = 'hunter2-portal'\n", "portal.password"),
    ("[payment]\nsecret = 'hunter2-payment'\n", "payment.secret"),
    ("[[agencies]]\ncode = 'A'\napi_key = 'hunter2-agency'\nunits = ['000.00.01.H55']\n", "agencies[0].api_key"),
    ("[operator]\napi_key = 'hunter2-operator'\n", "operator.api_key"),
    ("[queue.kafka]\nsasl_plain_password = 'hunter2-kafka'\n", "queue.kafka.sasl_plain_password"),
    ("[[signing.keys]]\nalias = 'k'\nsource = 'pkcs11'\npin = 'hunter2-pin'\n", "signing.keys[0].pin"),
])
def test_an_inline_secret_in_the_settings_file_is_refused_without_echoing_it(
        tmp_path: Path, text: str, key: str) -> None:
    """Start-up and check-config refuse a secret written into the file, naming its key and the
    two ways to give it; the message does not contain the secret."""
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(f, environ={})
    assert info.value.key == key, str(info.value)
    assert "_file" in str(info.value) and "_env" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_secret_comes_from_a_file_a_named_variable_or_the_override(tmp_path: Path) -> None:
    """``<name>_file`` (content, stripped), ``<name>_env`` (also inside arrays of tables, which the
    DVCGW_ overrides cannot address) and ``DVCGW_SECTION__NAME`` all give a secret; an empty
    inline value is no secret and stays allowed."""
    (tmp_path / "pw").write_text("from-a-file\n")
    f = tmp_path / "s.toml"
    f.write_text(f"[portal]\npassword_file = '{tmp_path / 'pw'}'\nclient_secret = ''\n"
                 "[[agencies]]\ncode = 'A'\napi_key_env = 'AGENCY_A_KEY'\nunits = ['000.00.01.H55']\n")
    s = load(f, environ={"AGENCY_A_KEY": "from-a-variable", "DVCGW_PAYMENT__SECRET": "from-the-override"})
    assert (s.portal.password, s.agencies[0].api_key, s.payment.secret) == \
        ("from-a-file", "from-a-variable", "from-the-override")
    assert sorted(secret_values(s)) == ["from-a-file", "from-a-variable", "from-the-override"]


def test_a_named_variable_that_is_not_set_names_the_key(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text("[portal]\npassword_env = 'NOT_SET_ANYWHERE'\n")
    with pytest.raises(ConfigError) as info:
        load(f, environ={})
    assert info.value.key == "portal.password_env" and "NOT_SET_ANYWHERE" in str(info.value)


def test_the_example_file_holds_no_secret() -> None:
    """config/example.toml loads under the rule (keys as digests, sandbox credentials as files)."""
    s = load(EXAMPLE, environ={})
    assert s.portal.password == "sandbox" and s.agencies[0].api_key == "" and s.operator.api_key == ""


def _tree(cls: type) -> typing.Iterator[tuple[type, str]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        tp = hints[f.name]
        args = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        if dataclasses.is_dataclass(tp):
            yield from _tree(tp)  # type: ignore[arg-type]
        elif args:
            yield from _tree(args[0])
        else:
            yield cls, f.name


def test_every_secret_looking_setting_is_registered_as_a_secret() -> None:
    """A new setting named like a secret (password, token, secret, pin, *_key …) must be listed in
    config.schema.SECRET_FIELDS, so the loader keeps it out of settings files and the log scan
    looks for it; the list names only fields that exist."""
    missing = [f"{c.__name__}.{n}" for c, n in _tree(Settings)
               if LOOKS_SECRET.search(n) and not NOT_SECRETS.search(n) and n not in SECRET_FIELDS.get(c, ())]
    assert missing == []
    for cls, names in SECRET_FIELDS.items():
        assert names <= {f.name for f in dataclasses.fields(cls)}, cls  # type: ignore[arg-type]
