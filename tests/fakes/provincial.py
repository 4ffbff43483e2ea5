"""A faithful test double of the provincial one-stop system's REST endpoint (docs/inbound.md), on
127.0.0.1 port 0.

What it does, like the receiver the gateway's contract describes
(:mod:`adapters.provincial_system.envelope`):

* ``POST /api/hoso`` needs the configured authentication header (else 401) and a JSON object with
  ``MaHoSo`` and ``version`` strings and a ``dossier`` object (else 400 ``{"code": "invalid"}``);
* it is idempotent by ``MaHoSo`` and ``version``: a version it holds is answered 409
  ``{"code": "exists", "message": "Hồ sơ … đã tồn tại"}`` and stored nothing; a new dossier is 201,
  a new version of a known one 200 (it replaces the held one);
* faults: :meth:`FakeProvincial.fail` queues statuses (500, 503, 429 with Retry-After, 400 …) for
  the next requests, answered before any of the above and recorded as such.

Usage::

    async with running_provincial() as prov:
        settings = {"url": prov.url, "auth_header": prov.auth_header, "auth_value": prov.auth_value}
        ...
        assert prov.stored["…"]["version"] == ...
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.local import serving

PATH = "/api/hoso"


@dataclass
class Received:
    """One request as it arrived, and what was answered."""

    status: int
    body: Any
    idempotency_key: str | None
    fault: bool = False


@dataclass
class FakeProvincial:
    url: str = ""
    auth_header: str = "X-Api-Key"
    auth_value: str = "provincial-secret"
    received: list[Received] = field(default_factory=list)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)  # MaHoSo → the body held
    faults: deque[tuple[int, str | None]] = field(default_factory=deque)

    def fail(self, status: int, count: int = 1, retry_after: str | None = None) -> None:
        """The next ``count`` requests are answered ``status`` (and ``Retry-After`` if given)."""
        self.faults.extend([(status, retry_after)] * count)

    def accepted(self) -> list[Received]:
        """The requests that stored a dossier (201 or 200)."""
        return [r for r in self.received if r.status in (200, 201)]

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        key = request.headers.get("Idempotency-Key")
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if self.faults:
            status, retry_after = self.faults.popleft()
            self.received.append(Received(status, body, key, fault=True))
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return web.json_response({"code": f"fault{status}", "message": "Lỗi giả lập"}, status=status,
                                     headers=headers)
        status, answer = self._answer(request, body)
        self.received.append(Received(status, body, key))
        return web.json_response(answer, status=status)

    def _answer(self, request: web.Request, body: Any) -> tuple[int, dict[str, Any]]:
        if request.headers.get(self.auth_header) != self.auth_value:
            return 401, {"code": "unauthorized", "message": "Thiếu hoặc sai thông tin xác thực"}
        if not (isinstance(body, dict) and isinstance(body.get("MaHoSo"), str) and body["MaHoSo"]
                and isinstance(body.get("version"), str) and isinstance(body.get("dossier"), dict)):
            return 400, {"code": "invalid", "message": "Dữ liệu hồ sơ không hợp lệ"}
        held = self.stored.get(body["MaHoSo"])
        if held is not None and held["version"] == body["version"]:
            return 409, {"code": "exists", "message": f"Hồ sơ {body['MaHoSo']} đã tồn tại"}
        self.stored[body["MaHoSo"]] = body
        return (201, {"status": "created"}) if held is None else (200, {"status": "updated"})


@asynccontextmanager
async def running_provincial(**config: Any) -> AsyncIterator[FakeProvincial]:
    """Serve a :class:`FakeProvincial` on 127.0.0.1, an OS-chosen port, for the block's duration."""
    fake = FakeProvincial(**config)
    app = web.Application()
    app.router.add_post(PATH, fake.handle)
    async with serving(app) as url:
        fake.url = f"{url}{PATH}"
        yield fake
