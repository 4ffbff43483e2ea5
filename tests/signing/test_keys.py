"""Key loading fails loudly at start-up, naming the key and never the secret."""

from __future__ import annotations

import pytest

from config.schema import SigningKeySettings
from core.errors import ConfigError
from signing import keys


def test_wrong_passphrase_names_the_key_not_the_secret(world):
    """A wrong passphrase gives ConfigError on signing.keys[alias]; the passphrase is not in the message."""
    k = world.tmp / "keys"
    ks = SigningKeySettings(alias="bad", source="file", pkcs12_file=str(k / "file.p12"),
                            passphrase="wrong-secret-value")
    with pytest.raises(ConfigError) as info:
        keys.read_file_key(ks)
    assert "signing.keys[bad]" in str(info.value) and "wrong-secret-value" not in str(info.value)


def test_key_must_match_certificate(world):
    """A key file paired with another key's certificate is refused."""
    k = world.tmp / "keys"
    ks = SigningKeySettings(alias="mixed", source="file", key_file=str(k / "untrusted.key.pem"),
                            cert_file=str(k / "file.crt.pem"))
    with pytest.raises(ConfigError, match="does not match"):
        keys.read_file_key(ks)


def test_passphrase_from_named_environment_variable(world):
    """passphrase_env reads the passphrase from the named variable when no passphrase is configured."""
    k = world.tmp / "keys"
    ks = SigningKeySettings(alias="env", source="file", pkcs12_file=str(k / "file.p12"),
                            passphrase_env="SIGNING_TEST_P12_PASS")
    assert keys.read_file_key(ks).cert.subject.rfc4514_string().startswith("CN=Test signer file")


@pytest.mark.parametrize(("source", "missing"), [("file", "pkcs12_file"), ("pkcs11", "module"),
                                                  ("remote", "credential_id")])
def test_incomplete_key_settings_are_refused(source, missing):
    """Each source names the settings it needs."""
    with pytest.raises(ConfigError, match=missing):
        keys.check_key_settings(SigningKeySettings(alias="x", source=source))  # type: ignore[arg-type]
