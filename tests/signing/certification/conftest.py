from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from config.schema import Settings, key_digest, load
from gateway.appkeys import SETTINGS
from gateway.auth import KEYRING, KeyRing
from gateway.certification_routes import setup_certification
from gateway.middleware import error_middleware
from gateway.signing_routes import setup_signing
from monitoring.metrics import Metrics
from tests.signing.conftest import Gateway
from tests.signing.env import World, free_port, settings_toml

OPERATOR_KEY = "cert-operator-key"
HOA_BINH = "000.00.01.H01"  # certifies with the trusted file key
CONCURRENT = "000.00.02.H01"  # its own book, for the 50-at-once test
UNTRUSTED = "000.00.03.H01"  # a key that chains to no configured root: signing "works", the check fails
CERTIFIER_ONLY = "000.00.04.H01"  # signing_mode "certifier": the certifier's remote key alone
BOTH = "000.00.05.H01"  # signing_mode "both": the certifier's remote key, then the authority's seal
AUTHORITY_NAME = "UBND xã Hòa Bình, tỉnh Quảng Ngãi"


def certification_toml(w: World, storage: Path, level: str = "B-T", *, workers: int = 2,
                       revocation_cache: str | None = None) -> str:
    cache = "" if revocation_cache is None else f'revocation_cache = "{revocation_cache}"\n'
    return settings_toml(w, storage=storage, workers=workers) + f'''
[operator]
api_key_sha256 = "{key_digest(OPERATOR_KEY, '')}"

[certification]
level = "{level}"
{cache}
[[certification.authorities]]
code = "{HOA_BINH}"
name = "{AUTHORITY_NAME}"
key = "file-pem"
agencies = ["STP"]

[[certification.authorities]]
code = "{CONCURRENT}"
name = "UBND phường Bến Nghé, TP Hồ Chí Minh"
key = "file-p12"
agencies = ["STP"]

[[certification.authorities]]
code = "{UNTRUSTED}"
name = "UBND xã Thử"
key = "untrusted"
agencies = ["STP"]

[[certification.authorities]]
code = "{CERTIFIER_ONLY}"
name = "UBND xã Một Chữ Ký"
agencies = ["STP"]
signing_mode = "certifier"

[[certification.authorities.certifiers]]
id = "tp-auto"
key = "remote-auto"

[[certification.authorities]]
code = "{BOTH}"
name = "UBND phường Hai Chữ Ký"
key = "file-pem"
agencies = ["STP"]
signing_mode = "both"

[[certification.authorities.certifiers]]
id = "tp-phone"
key = "remote"

[[certification.authorities.certifiers]]
id = "tp-auto"
key = "remote-auto"
'''


def certification_app(settings: Settings, registry: CollectorRegistry) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[KEYRING] = KeyRing(settings.agencies, settings.operator)
    app[SETTINGS] = settings
    metrics = Metrics(registry)
    setup_signing(app, settings, metrics)
    setup_certification(app, settings, metrics)
    return app


@pytest.fixture(scope="session")
def cert_gw(world: World, tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    storage = tmp_path_factory.mktemp("cert-storage")
    path = world.tmp / "cert.toml"
    path.write_text(certification_toml(world, storage))
    settings = load(path, environ={})
    registry = CollectorRegistry()
    url, _ = world.servers.serve(certification_app(settings, registry), port=free_port())
    return Gateway(url, registry, storage)
