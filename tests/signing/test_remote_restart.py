"""Remote hash signing survives a daemon restart while the officer has not yet confirmed."""

from __future__ import annotations

import aiohttp
from prometheus_client import CollectorRegistry

from tests.fakes.pdfs import one_page_pdf
from tests.signing import checks, client
from tests.signing.env import free_port, gateway_app, load_settings


async def test_remote_job_survives_restart_and_completes_by_webhook(world, tmp_path):
    """A B-LT remote job accepted (202) by one gateway instance is finished by a new instance on the
    same storage after the confirmation; with a 1-hour poll interval only the webhook can wake it."""
    port = free_port()
    settings = load_settings(world, "restart", storage=tmp_path, workers=1, poll_interval="1h",
                             callback_base_url=f"http://127.0.0.1:{port}")
    before = set(world.remote.pending())
    url, runner = world.servers.serve(gateway_app(settings, CollectorRegistry()), port=port)
    r = await client.sign(url, one_page_pdf(), {"key": "remote", "level": "B-LT"})
    assert r.status == 202
    job_id = r.json()["id"]
    (tid,) = set(world.remote.pending()) - before
    world.servers.stop(runner)  # the daemon goes away while the phone still shows the request

    url, runner = world.servers.serve(gateway_app(settings, CollectorRegistry()), port=port)
    try:
        _, body = await client.job(url, job_id)
        assert body["state"] == "pending"
        sent = world.remote.callbacks_sent
        async with aiohttp.ClientSession() as s, s.post(f"{world.remote_url}/_test/confirm/{tid}") as resp:
            assert resp.status == 200
        assert world.remote.callbacks_sent == sent + 1
        body = await client.wait_job(url, job_id, deadline=30)
        assert body["state"] == "completed", body
        async with aiohttp.ClientSession() as s, s.get(
                f"{url}/v1/signatures/{job_id}", headers=client.headers(Accept="application/pdf")) as resp:
            assert resp.content_type == "application/pdf"
            pdf = await resp.read()
        _, report = await client.validate(url, pdf)
        sig = report["signatures"][0]
        assert (sig["indication"], sig["revocation"]) == ("TOTAL-PASSED", "good"), sig
        assert sig["timestamp"]["valid"] is True
        path = tmp_path / "remote.pdf"
        path.write_bytes(pdf)
        assert checks.pdfsig(path)[0]["valid"]
        assert checks.openssl_verify(pdf, world.root_pem, tmp_path / "cms").returncode == 0
    finally:
        world.servers.stop(runner)


async def test_only_the_digest_leaves_the_gateway(signing_gw, world):
    """The remote signer receives a 32-byte SHA-256 digest, never the document."""
    seen = len(world.remote.received_bodies)
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "remote-auto", "level": "B-T"})
    assert r.status == 202
    body = world.remote.received_bodies[seen]
    assert set(body) >= {"credentialID", "hashes", "hashAlgorithmOID"}
    assert "file" not in str(body) and len(body["hashes"]) == 1
    job = await client.wait_job(signing_gw.url, r.json()["id"])
    assert job["state"] == "completed" and job["level"] == "B-T"


async def test_rejected_confirmation_fails_the_job(signing_gw, world):
    """When the officer rejects the request on the phone, the job ends as failed with a reason."""
    before = set(world.remote.pending())
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "remote", "level": "B-B"})
    job_id = r.json()["id"]
    (tid,) = set(world.remote.pending()) - before
    async with aiohttp.ClientSession() as s, s.post(f"{world.remote_url}/_test/reject/{tid}") as resp:
        assert resp.status == 200
    body = await client.wait_job(signing_gw.url, job_id, state="failed")
    assert body["state"] == "failed" and "rejected" in body["message"]


async def test_remote_signer_refusal_is_a_clear_error(signing_gw):
    """A remote service refusing our credentials (HTTP 401) gives the agency 422 signing_failed, not a job."""
    r = await client.sign(signing_gw.url, one_page_pdf(), {"key": "remote-wrong-secret"})
    assert r.status == 422
    assert r.json()["error"] == "signing_failed" and "HTTP 401" in r.json()["message"]
