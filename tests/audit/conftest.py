"""The message log's test world: the signing test PKI and its two TSAs (tests/signing/env.py, real
HTTP on 127.0.0.1), a sealing key of the gateway's own, the real sandbox, the real gateway app."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from audit.log import AuditLog, Sealer
from config.schema import Settings
from gateway.message_log import AUDIT, SEALER
from tests.fakes.portal import FakeClock
from tests.harness import Gateway, Sandbox, run_gateway, run_sandbox, settings_for
from tests.signing.env import World, build_world

SEAL_ALIAS = "gw-seal"


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("audit-world"), with_hsm=False)
    seal = w.pki.signer("gateway-seal")
    keys = w.tmp / "seal"
    keys.mkdir()
    (keys / "seal.key.pem").write_bytes(seal.pem_key())
    (keys / "seal.crt.pem").write_bytes(seal.pem_cert())
    (keys / "chain.pem").write_bytes(w.pki.inter.pem_cert())
    yield w
    w.close()


def signing_section(w: World) -> dict[str, Any]:
    k = w.tmp / "seal"
    return {"keys": [{"alias": SEAL_ALIAS, "source": "file", "key_file": str(k / "seal.key.pem"),
                      "cert_file": str(k / "seal.crt.pem"), "chain_files": [str(k / "chain.pem")]}],
            "tsa_urls": [w.tsa_urls[0]], "tsa_timeout": "2s", "tsa_attempts": 1, "trust_roots": [str(w.root_pem)],
            "workers": 1}


def audit_settings(tmp: Path, w: World, portal_url: str, **audit: Any) -> Settings:
    return settings_for(tmp, portal_url, signing=signing_section(w),
                        audit={"bodies": "hash", "seal_key": SEAL_ALIAS, **audit})


@dataclass
class Audited:
    gw: Gateway
    world: World
    settings: Settings

    @property
    def log(self) -> AuditLog:
        return self.gw.app[AUDIT]

    @property
    def sealer(self) -> Sealer:
        return self.gw.app[SEALER]

    @property
    def path(self) -> Path:
        return self.settings.audit.file(self.settings.storage.path)


@asynccontextmanager
async def audited(tmp: Path, w: World, sandbox: Sandbox, **audit: Any) -> AsyncIterator[Audited]:
    settings = audit_settings(tmp, w, sandbox.url, **audit)
    async with run_gateway(settings, FakeClock(start=time.time())) as gw:
        yield Audited(gw, w, settings)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with run_sandbox() as sb:
        yield sb


@pytest.fixture(autouse=True)
def tsa_up(world: World) -> Iterator[None]:
    world.tsa_a.fail = False
    yield
    world.tsa_a.fail = False
