"""Signing benchmark (issue 4): B-B signatures/s of a 1-page PDF with RSA-2048 through the HTTP API,
beside pyHanko's default loop measured in the same run; and validations/s likewise.

* Baseline ("default loop"): in this process, one ``SimpleSigner`` loaded once, then
  ``signers.sign_pdf`` one document after another (pyHanko re-parses the key and runs a dry-run
  signature for the placeholder on every call). Validation baseline: ``validate_pdf_signature``
  one after another with a fresh ValidationContext each.
* Gateway: the signing service in its own subprocess (``--serve``: an aiohttp app with
  ``setup_signing``, worker pool sized to the cores), driven over HTTP on 127.0.0.1 by this
  process with a fixed number of requests in flight.

Target: >= 5x the default loop, or >= 25 signatures/s on 2 cores.
Run: ``.venv/bin/python -m bench.bench_signing`` (``--seconds N`` per measurement, default 8).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.fakes.pdfs import one_page_pdf
from tests.signing.env import AGENCY_KEYS, PASSPHRASE, World, build_world, free_port, settings_toml


def _baseline_sign(w: World, seconds: float) -> tuple[float, bytes]:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    keys = w.tmp / "keys"
    signer = signers.SimpleSigner.load(str(keys / "file.key.pem"), str(keys / "file.crt.pem"),
                                       ca_chain_files=(str(keys / "chain.pem"),), key_passphrase=PASSPHRASE)
    assert signer is not None
    meta = signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm="sha256",
                                        subfilter=fields.SigSeedSubFilter.PADES)
    pdf, n, out = one_page_pdf(), 0, b""
    end = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=signer).getvalue()
        n += 1
    return n / (time.perf_counter() - start), out


def _baseline_validate(w: World, signed: bytes, seconds: float) -> float:
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    root = load_cert_from_pemder(str(w.root_pem))
    n, end = 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        sig = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
        st = validate_pdf_signature(sig, ValidationContext(trust_roots=[root], allow_fetching=True))
        assert st.intact and st.valid
        n += 1
    return n / (time.perf_counter() - start)


async def _drive(url: str, path: str, body: bytes, params: dict[str, str], seconds: float, inflight: int) -> float:
    headers = {"X-API-Key": AGENCY_KEYS["STP"], "Content-Type": "application/pdf"}
    done = 0
    end = time.perf_counter() + seconds

    async def worker(s: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < end:
            async with s.post(url + path, data=body, params=params, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{path} answered {r.status}: {(await r.read())[:300]!r}")
            done += 1

    conn = aiohttp.TCPConnector(limit=inflight)
    async with aiohttp.ClientSession(connector=conn) as s:
        start = time.perf_counter()
        await asyncio.gather(*(worker(s) for _ in range(inflight)))
        return done / (time.perf_counter() - start)


async def _wait_up(url: str, proc: subprocess.Popen[bytes], deadline: float = 60) -> None:
    end = time.monotonic() + deadline
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError("the signing service exited during start-up")
            try:
                async with s.get(url + "/v1/signatures/none", headers={"X-API-Key": AGENCY_KEYS["STP"]}) as r:
                    if r.status == 404:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the signing service did not start in time")


def serve(settings_path: str, port: int) -> None:
    """``--serve``: the signing service alone, as the daemon would run it."""
    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from config.schema import load
    from tests.signing.env import gateway_app

    settings = load(settings_path, environ={})
    web.run_app(gateway_app(settings, CollectorRegistry()), host="127.0.0.1", port=port, print=None)


def _start_service(w: World) -> tuple[subprocess.Popen[bytes], str]:
    storage = Path(tempfile.mkdtemp(prefix="bench-signing-"))
    cfg = storage / "settings.toml"
    cfg.write_text(settings_toml(w, storage=storage, workers=os.cpu_count() or 1))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.bench_signing", "--serve", str(cfg), str(port)],
                            env={**os.environ})
    return proc, f"http://127.0.0.1:{port}"


async def _gateway_figures(proc: subprocess.Popen[bytes], url: str, seconds: float,
                           inflight: int) -> tuple[float, float]:
    try:
        await _wait_up(url, proc)
        pdf = one_page_pdf()
        params = {"key": "file-pem", "level": "B-B"}
        await _drive(url, "/v1/signatures", pdf, params, 1.0, inflight)  # warm-up: placeholder sizes
        signs = await _drive(url, "/v1/signatures", pdf, params, seconds, inflight)
        async with aiohttp.ClientSession() as s, s.post(
                url + "/v1/signatures", data=pdf, params=params,
                headers={"X-API-Key": AGENCY_KEYS["STP"], "Content-Type": "application/pdf"}) as r:
            signed = await r.read()
        validations = await _drive(url, "/v1/signatures/validate", signed, {}, seconds, inflight)
        return signs, validations
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--inflight", type=int, default=8)
    ap.add_argument("--serve", nargs=2, metavar=("SETTINGS", "PORT"))
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    w = build_world(Path(tempfile.mkdtemp(prefix="bench-signing-world-")), with_hsm=False)
    try:
        base_sign, signed = _baseline_sign(w, args.seconds)
        base_validate = _baseline_validate(w, signed, args.seconds)
        proc, url = _start_service(w)
        gw_sign, gw_validate = asyncio.run(_gateway_figures(proc, url, args.seconds, args.inflight))
    finally:
        w.close()
    cores = os.cpu_count()
    ok = gw_sign >= 5 * base_sign or gw_sign >= 25
    print(f"\nB-B signing, 1-page PDF, RSA-2048, {cores} cores, {args.inflight} requests in flight")
    print(f"{'':28}{'gateway (HTTP)':>16}{'pyHanko loop':>16}{'ratio':>8}")
    print(f"{'signatures/s':28}{gw_sign:16.1f}{base_sign:16.1f}{gw_sign / base_sign:7.1f}x")
    print(f"{'validations/s':28}{gw_validate:16.1f}{base_validate:16.1f}{gw_validate / base_validate:7.1f}x")
    print(f"target: >= 5x the default loop or >= 25/s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
