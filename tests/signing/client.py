"""HTTP helpers for the signing tests (real requests to the gateway on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.signing.env import AGENCY_KEYS


def headers(agency: str = "STP", **extra: str) -> dict[str, str]:
    return {"X-API-Key": AGENCY_KEYS[agency], **extra}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def sign(url: str, pdf: bytes, options: dict[str, Any], agency: str = "STP") -> Reply:
    """POST /v1/signatures as multipart (file + options JSON)."""
    form = aiohttp.FormData()
    form.add_field("options", json.dumps(options), content_type="application/json")
    form.add_field("file", pdf, filename="doc.pdf", content_type="application/pdf")
    async with aiohttp.ClientSession() as s, s.post(f"{url}/v1/signatures", data=form,
                                                    headers=headers(agency)) as r:
        return Reply(r.status, dict(r.headers), await r.read())


async def validate(url: str, pdf: bytes, agency: str = "STP") -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(
            f"{url}/v1/signatures/validate", data=pdf,
            headers=headers(agency, **{"Content-Type": "application/pdf"})) as r:
        return r.status, await r.json()


async def job(url: str, job_id: str, agency: str = "STP") -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/v1/signatures/{job_id}", headers=headers(agency)) as r:
        return r.status, await r.json()


async def wait_job(url: str, job_id: str, state: str = "completed", deadline: float = 30) -> Any:
    """Polls the job until it reaches ``state`` (or fails); bounded by ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        _, body = await job(url, job_id)
        if body["state"] in (state, "failed"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {state} within {deadline}s: {body}")


async def wait_for(predicate: Any, deadline: float = 10) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")
