"""Builds the signing test world: PKI + responders, two TSAs, a remote signer, a SoftHSM2 token,
key files and a gateway settings file. Used by the tests' conftest and by bench/bench_signing.py."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from prometheus_client import CollectorRegistry

from config.schema import Settings, key_digest, load
from gateway.auth import KEYRING, KeyRing
from gateway.signing_routes import setup_signing
from monitoring.metrics import Metrics
from tests.fakes.remote_signer import FakeRemoteSigner
from tests.fakes.signing_pki import PkiServer, TestPki
from tests.fakes.threaded import ServerThread
from tests.fakes.tsa import FakeTsa

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PASSPHRASE = b"p12-and-pem-passphrase"
HSM_PIN = "4321"
REMOTE_SECRET = "remote-client-secret"
AGENCY_KEYS = {"STP": "stp-api-key", "SYT": "syt-api-key"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init_softhsm(directory: Path, key_pem: bytes, cert_der: bytes, label: str) -> Path:
    """Initialises a SoftHSM2 token in ``directory`` with one key pair + certificate; returns the conf path."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    (directory / "k.pem").write_bytes(key_pem)
    (directory / "c.der").write_bytes(cert_der)
    run = [
        ["softhsm2-util", "--init-token", "--free", "--label", "dvcgw-test", "--so-pin", "12345678",
         "--pin", HSM_PIN],
        ["softhsm2-util", "--import", str(directory / "k.pem"), "--token", "dvcgw-test", "--label", label,
         "--id", "01", "--pin", HSM_PIN],
        ["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", "dvcgw-test", "--login", "--pin", HSM_PIN,
         "--write-object", str(directory / "c.der"), "--type", "cert", "--label", label, "--id", "01"],
    ]
    for cmd in run:
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=60)
    (directory / "k.pem").unlink()
    return conf


@dataclass
class World:
    tmp: Path
    servers: ServerThread
    pki: TestPki
    pki_server: PkiServer
    tsa_a: FakeTsa
    tsa_b: FakeTsa
    tsa_urls: tuple[str, str]
    remote: FakeRemoteSigner
    remote_url: str
    root_pem: Path
    other_root_pem: Path
    files: dict[str, Path] = field(default_factory=dict)
    softhsm_conf: Path | None = None

    def close(self) -> None:
        self.servers.close()


def build_world(tmp: Path, *, with_hsm: bool = True) -> World:
    servers = ServerThread()
    pki_server = PkiServer()
    pki_url, _ = servers.serve(pki_server.app)
    pki = TestPki(pki_url)
    pki_server.pki = pki
    tsa_a, tsa_b = FakeTsa(pki), FakeTsa(pki)
    url_a, _ = servers.serve(tsa_a.app)
    url_b, _ = servers.serve(tsa_b.app)
    remote = FakeRemoteSigner(REMOTE_SECRET)
    remote_url, _ = servers.serve(remote.app)
    chain = [pki.inter.cert.public_bytes(serialization.Encoding.DER)]
    remote.add("cred-remote", pki.signer("remote"), chain)
    remote.add("cred-auto", pki.signer("remote-auto"), chain, auto_confirm=True)
    root, other = pki.write_roots(tmp / "roots")
    w = World(tmp, servers, pki, pki_server, tsa_a, tsa_b, (url_a, url_b), remote, remote_url, root, other)
    for name in ("file", "revoked", "other"):
        w.files.update({f"{name}.{k}": v for k, v in pki.write_signer_files(name, tmp / "keys", PASSPHRASE).items()})
    pki.revoke(pki.signer("revoked").cert)
    untrusted = pki.signer("untrusted", untrusted=True)
    (tmp / "keys" / "untrusted.key.pem").write_bytes(untrusted.pem_key())
    (tmp / "keys" / "untrusted.crt.pem").write_bytes(untrusted.pem_cert())
    (tmp / "secrets").mkdir(exist_ok=True)
    (tmp / "secrets" / "pass").write_bytes(PASSPHRASE + b"\n")
    (tmp / "secrets" / "pin").write_text(HSM_PIN + "\n")
    (tmp / "secrets" / "remote").write_text(REMOTE_SECRET)
    (tmp / "secrets" / "remote-wrong").write_text("not-the-secret")
    if with_hsm and shutil.which("softhsm2-util"):
        hsm = pki.signer("hsm")
        w.softhsm_conf = init_softhsm(tmp / "hsm", hsm.pem_key(),
                                      hsm.cert.public_bytes(serialization.Encoding.DER), "hsm-signer")
        os.environ["SOFTHSM2_CONF"] = str(w.softhsm_conf)  # read by libsofthsm2 in every process
    os.environ["SIGNING_TEST_P12_PASS"] = PASSPHRASE.decode()
    return w


def settings_toml(w: World, *, storage: Path, tsa_urls: tuple[str, ...] | None = None, allow_downgrade: bool = False,
                  workers: int = 2, callback_base_url: str = "", poll_interval: str = "50ms",
                  max_pdf_bytes: int = 2_000_000) -> str:
    k, s = w.tmp / "keys", w.tmp / "secrets"
    urls = ", ".join(f'"{u}"' for u in (w.tsa_urls if tsa_urls is None else tsa_urls))
    keys = f'''
[[signing.keys]]
alias = "file-pem"
source = "file"
agencies = ["STP"]
key_file = "{k}/file.key.pem"
cert_file = "{k}/file.crt.pem"
chain_files = ["{k}/chain.pem"]
passphrase_file = "{s}/pass"

[[signing.keys]]
alias = "file-p12"
source = "file"
agencies = ["STP"]
pkcs12_file = "{k}/file.p12"
passphrase_env = "SIGNING_TEST_P12_PASS"

[[signing.keys]]
alias = "revoked"
source = "file"
agencies = ["STP"]
pkcs12_file = "{k}/revoked.p12"
passphrase_file = "{s}/pass"

[[signing.keys]]
alias = "untrusted"
source = "file"
agencies = ["STP"]
key_file = "{k}/untrusted.key.pem"
cert_file = "{k}/untrusted.crt.pem"

[[signing.keys]]
alias = "syt-seal"
source = "file"
agencies = ["SYT"]
pkcs12_file = "{k}/other.p12"
passphrase_file = "{s}/pass"

[[signing.keys]]
alias = "remote"
source = "remote"
agencies = ["STP"]
url = "{w.remote_url}"
credential_id = "cred-remote"
client_secret_file = "{s}/remote"

[[signing.keys]]
alias = "remote-wrong-secret"
source = "remote"
agencies = ["STP"]
url = "{w.remote_url}"
credential_id = "cred-remote"
client_secret_file = "{s}/remote-wrong"

[[signing.keys]]
alias = "remote-auto"
source = "remote"
agencies = ["STP"]
url = "{w.remote_url}"
credential_id = "cred-auto"
client_secret_file = "{s}/remote"
'''
    if w.softhsm_conf is not None:
        keys += f'''
[[signing.keys]]
alias = "hsm"
source = "pkcs11"
agencies = ["STP"]
module = "{SOFTHSM_MODULE}"
token_label = "dvcgw-test"
key_label = "hsm-signer"
cert_label = "hsm-signer"
chain_files = ["{k}/chain.pem"]
pin_file = "{s}/pin"
'''
    return f'''
[storage]
path = "{storage}/dvcgw.sqlite3"

[[agencies]]
code = "STP"
api_key_sha256 = "{key_digest(AGENCY_KEYS['STP'], '')}"

[[agencies]]
code = "SYT"
api_key_sha256 = "{key_digest(AGENCY_KEYS['SYT'], '')}"

[signing]
tsa_urls = [{urls}]
tsa_timeout = "3s"
trust_roots = ["{w.root_pem}"]
allow_downgrade = {str(allow_downgrade).lower()}
workers = {workers}
max_pdf_bytes = {max_pdf_bytes}
remote_poll_interval = "{poll_interval}"
callback_base_url = "{callback_base_url}"
{keys}'''


def load_settings(w: World, name: str, **kw: object) -> Settings:
    path = w.tmp / f"{name}.toml"
    path.write_text(settings_toml(w, **kw))  # type: ignore[arg-type]
    return load(path, environ={})


def gateway_app(settings: Settings, registry: CollectorRegistry, **kw: object) -> web.Application:
    app = web.Application()
    app[KEYRING] = KeyRing(settings.agencies, settings.operator)
    setup_signing(app, settings, Metrics(registry), **kw)  # type: ignore[arg-type]
    return app
