"""Certification overhead benchmark (issue 16): p50 and p99 latency of certifying a 1-page scan end
to end (POST /v1/certifications: assemble, reserve, stamp, sign, validate, record) beside signing the
same PDF alone (POST /v1/signatures, same key, same level), one request at a time, in the same run.

Both go through one in-process gateway (the signing and certification routes on an aiohttp server
thread, the signing worker pool, the test PKI and TSA on 127.0.0.1). The two kinds alternate so
that both see the same machine load. Target: overhead (certify p50 − sign p50) <= 20 ms.

Run: ``.venv/bin/python -m bench.bench_certification`` (``--n`` requests of each kind, default 200;
``--quick`` = 20, a smoke run whose figures are indicative only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry

from config.schema import load
from tests.signing.certification.conftest import HOA_BINH, certification_app, certification_toml
from tests.signing.certification.scans import scan_pdf
from tests.signing.env import AGENCY_KEYS, build_world, free_port

META = {"authority_code": HOA_BINH, "certifier_name": "Nguyễn Văn A", "certifier_title": "Công chức",
        "requester_name": "Trần Thị B", "requester_id_no": "001099000001", "document_name": "Giấy khai sinh"}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _run(url: str, n: int) -> tuple[list[float], list[float]]:
    pdf = scan_pdf(1)
    headers = {"X-API-Key": AGENCY_KEYS["STP"]}
    cert, sign = [], []
    async with aiohttp.ClientSession(headers=headers) as s:
        for i in range(n + 3):  # the first three of each warm the pool and the connection
            form = aiohttp.FormData()
            form.add_field("metadata", json.dumps(META), content_type="application/json")
            form.add_field("file", pdf, filename="scan.pdf", content_type="application/pdf")
            t = time.perf_counter()
            async with s.post(f"{url}/v1/certifications", data=form) as r:
                assert r.status == 201, await r.text()
            if i >= 3:
                cert.append(time.perf_counter() - t)
            t = time.perf_counter()
            async with s.post(f"{url}/v1/signatures", data=pdf, params={"key": "file-pem", "level": "B-T"},
                              headers={"Content-Type": "application/pdf"}) as r:
                assert r.status == 200, await r.text()
            if i >= 3:
                sign.append(time.perf_counter() - t)
    return cert, sign


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 20 if args.quick else args.n
    tmp = Path(tempfile.mkdtemp(prefix="bench-cert-"))
    w = build_world(tmp / "world", with_hsm=False)
    try:
        path = tmp / "cert.toml"
        path.write_text(certification_toml(w, tmp / "storage"))
        url, _ = w.servers.serve(certification_app(load(path, environ={}), CollectorRegistry()), port=free_port())
        cert, sign = asyncio.run(_run(url, n))
    finally:
        w.close()
    ms = 1000.0
    over = (statistics.median(cert) - statistics.median(sign)) * ms
    note = " (quick: indicative)" if args.quick else ""
    print(f"\n1-page scan, B-T, RSA-2048, one request at a time, n = {n} each{note}")
    print(f"{'':24}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'certify (end to end)':24}{_pct(cert, .5) * ms:10.1f}{_pct(cert, .99) * ms:10.1f}")
    print(f"{'sign alone':24}{_pct(sign, .5) * ms:10.1f}{_pct(sign, .99) * ms:10.1f}")
    print(f"{'overhead':24}{over:10.1f}{(_pct(cert, .99) - _pct(sign, .99)) * ms:10.1f}")
    print(f"overhead at p50: {over:.1f} ms (target <= 20 ms): {'PASS' if over <= 20 else 'FAIL'}")
    return 0 if over <= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
