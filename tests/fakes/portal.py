"""Test helpers for anything that talks to the national portal: the real sandbox on 127.0.0.1
port 0, a controllable clock, a closing TCP server, and sample dossiers (no real personal data).

Usage::

    async with running_sandbox() as sb:
        settings = portal_settings(sb.url)
        ...
        record = await sb.record()
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from adapters.sandbox.app import STATE, create_sandbox_app
from adapters.sandbox.state import SandboxState
from config.schema import PortalSettings
from tests.fakes.local import serving

MADONVI = "000.00.01.H56"
DSTCODE = "DVCQG-TEST"


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class SandboxHandle:
    """A running sandbox: its base URL, its state and its admin routes."""

    url: str
    app: web.Application
    http: aiohttp.ClientSession

    @property
    def state(self) -> SandboxState:
        return self.app[STATE]

    async def admin(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.http.post(f"{self.url}/_sandbox/{path}", json=body or {}) as resp:
            assert resp.status == 200, await resp.text()
            data: dict[str, Any] = await resp.json()
            return data

    async def fault(self, mode: str, **kw: Any) -> None:
        await self.admin("faults", {"mode": mode, **kw})

    async def record(self) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/_sandbox/record") as resp:
            assert resp.status == 200
            data: dict[str, Any] = await resp.json()
            return data


@asynccontextmanager
async def running_sandbox(clock: Callable[[], float] | None = None, **startup: Any) -> AsyncIterator[SandboxHandle]:
    """Serve the real sandbox app on 127.0.0.1, an OS-chosen port, for the block's duration;
    ``startup`` are its start-up settings (``latency``, ``rate_limit``, ``payment_secret``,
    ``payment_callback``) as ``dvcgw sandbox`` passes them."""
    app = create_sandbox_app(clock=clock, **startup)
    async with serving(app) as url, aiohttp.ClientSession() as http:
        yield SandboxHandle(url=url, app=app, http=http)


def portal_settings(url: str, **overrides: Any) -> PortalSettings:
    """PortalSettings pointing at ``url`` with test credentials (token URL = ``url``/token)."""
    base: dict[str, Any] = {
        "adapter_url": url,
        "username": "tinh-h56",
        "password": "mat-khau-thu",
        "madonvi": MADONVI,
        "dstcode": DSTCODE,
        "token_url": f"{url}/token",
        "client_id": "gateway-h56",
        "client_secret": "client-secret",
        "timeout": 5.0,
    }
    base.update(overrides)
    return PortalSettings(**base)


def dossier(code: str, **overrides: Any) -> dict[str, Any]:
    """A valid §6.1 dossier with every scalar a string (invented, non-personal values)."""
    d: dict[str, Any] = {
        "MaHoSo": code,
        "MaTTHC": "1.003560.000.00.00.H56",
        "TenTTHC": "Thủ tục thử nghiệm",
        "MaLinhVuc": "LV01",
        "TenLinhVuc": "Lĩnh vực thử nghiệm",
        "KenhThucHien": "2",
        "ChuHoSo": "Chủ hồ sơ thử nghiệm",
        "LoaiDoiTuong": "1",
        "TrichYeuHoSo": "Hồ sơ mẫu",
        "NgayTiepNhan": "20240315093000",
        "NgayHenTra": "20240322170000",
        "TrangThaiHoSo": "2",
        "NgayKetThucXuLy": "",
        "DanhSachLePhi": [{"TenPhiLePhi": "Lệ phí", "Gia": "50000", "LoaiPhiLePhi": "2"}],
        "DanhSachTepDinhKemKhac": [{"TenGiayTo": "Bản sao", "SoLuong": 1, "LoaiGiayTo": 2}],
        "TaiLieuNop": [],
    }
    d.update(overrides)
    return d


def progress(code: str, n: int = 1, **overrides: Any) -> dict[str, Any]:
    """A valid §6.9 progress item for dossier ``code`` (``n`` varies the time)."""
    item = {
        "MaHoSo": code,
        "NguoiXuLy": "Chuyên viên",
        "ThoiDiemXuLy": f"202403151{n % 10}0000",
        "NoiDungXuLy": f"Bước {n}",
        "TrangThai": "4",
    }
    item.update(overrides)
    return item


class ClosingServer:
    """A TCP server that reads the first byte of each connection, then closes it; counts them."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.read(1)
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
