"""HTTP load against `dvcgw serve` daemons (SQLite or Kafka), and the checks against the sandbox's record.

:class:`Load` runs, per dossier, one sequential stream of snapshot PUTs and progress POSTs (the
way an agency's outbox sends), spread over the live daemons, and remembers every answer with its
start and end time. :func:`check_dossier` then compares what got 202 with what reached the portal:
nothing accepted is lost, snapshots never arrive older-after-newer, progress arrives in acceptance
order. Delivery is at-least-once, so repeats are allowed, and an event answered 503 may still
arrive (its produce can land after the answer), so nothing is asserted absent.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.harness import AGENCY_KEY
from tests.samples import sample_dossier

STATES = ["2", "4", "5", "4", "6", "4", "9", "10"]


@dataclass
class Answer:
    mahoso: str
    kind: str  # "snapshot" | "progress"
    step: int
    status: int  # HTTP status, 0 for a transport error
    started: float
    ended: float


@dataclass
class Load:
    """Sequential per-dossier streams spread over ``urls`` (a url removed from the list gets no more)."""

    urls: list[str]
    answers: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def accepted(self, m: str, kind: str) -> list[int]:
        return [a.step for a in self.answers if a.mahoso == m and a.kind == kind and a.status == 202]

    def progress_ok(self, m: str) -> list[str]:
        return [f"p-{s:05d}-{i}" for s in self.accepted(m, "progress") for i in range(3)]

    async def run_dossier(self, http: aiohttp.ClientSession, m: str) -> None:
        step = 0
        while not self.stop.is_set():
            step += 1
            url = self.urls[step % len(self.urls)]
            state = STATES[min(step // 3, len(STATES) - 1)]
            kind = "snapshot" if step % 2 else "progress"
            started = time.monotonic()
            status = 0
            try:
                if kind == "snapshot":
                    body = sample_dossier(m, TrangThaiHoSo=state, GhiChu=f"step-{step:05d}")
                    async with http.put(f"{url}/v1/dossiers/{m}", json=body) as r:
                        status = r.status
                else:
                    items = [{"MaHoSo": m, "NguoiXuLy": "Chuyên viên", "ThoiDiemXuLy": "20240316100000",
                              "TrangThai": state, "NoiDungXuLy": f"p-{step:05d}-{i}"} for i in range(3)]
                    async with http.post(f"{url}/v1/dossiers/{m}/progress", json=items) as r:
                        status = r.status
            except (TimeoutError, aiohttp.ClientError):
                status = 0
            self.answers.append(Answer(m, kind, step, status, started, time.monotonic()))
            if status != 202:
                await asyncio.sleep(0.05)


def session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit), headers={"X-API-Key": AGENCY_KEY},
                                 timeout=aiohttp.ClientTimeout(total=20))


def check_dossier(m: str, calls: list[dict[str, Any]], snap_ok: list[int], prog_ok: list[str]) -> None:
    """Every accepted event of ``m`` reached the portal, in order (repeats allowed)."""
    pushed = [int(c["data"]["GhiChu"].split("-")[1]) for c in calls if c["service"] == "DongBoHoSoMC"]
    assert pushed == sorted(pushed), f"{m}: snapshots out of order {pushed}"
    if snap_ok:
        assert pushed and pushed[-1] >= snap_ok[-1], f"{m}: newest accepted snapshot {snap_ok[-1]} not delivered"
    seen = [i["NoiDungXuLy"] for c in calls if c["service"] == "CapNhatTienDoHoSoMC" for i in c["items"]]
    assert set(prog_ok) <= set(seen), f"{m}: lost progress {sorted(set(prog_ok) - set(seen))[:5]}"
    accepted = set(prog_ok)
    first_order = [x for x in dict.fromkeys(seen) if x in accepted]
    assert first_order == prog_ok, f"{m}: progress out of order"


async def wait_delivered(url: str, codes: list[str], timeout: float) -> None:
    """Poll ``GET /v1/dossiers/{m}`` until every dossier is delivered with no pending progress."""
    deadline = time.monotonic() + timeout
    pending = list(codes)
    last: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers={"X-API-Key": AGENCY_KEY},
                                     timeout=aiohttp.ClientTimeout(total=10)) as http:
        while pending and time.monotonic() < deadline:
            still = []
            for m in pending:
                try:
                    async with http.get(f"{url}/v1/dossiers/{m}") as r:
                        last[m] = st = await r.json()
                except (TimeoutError, aiohttp.ClientError):
                    still.append(m)
                    continue
                if st.get("delivery") != "delivered" or st.get("pending_progress"):
                    still.append(m)
            pending = still
            if pending:
                await asyncio.sleep(0.3)
    assert not pending, f"not delivered in time: {[(m, last.get(m)) for m in pending[:3]]}"
