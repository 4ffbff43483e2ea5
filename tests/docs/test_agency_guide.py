"""docs/agency-guide.md cannot rot: every curl example in it runs, with the real ``curl``, against a
live gateway and sandbox, and its answer must be the one the guide shows.

What runs (all on 127.0.0.1, ports the OS chooses):

* the sandbox as its own process (``dvcgw sandbox``: the national portal and the payment platform,
  its CONFIRM callbacks sent to the daemon), as ``make run`` starts it;
* the daemon as its own process (``dvcgw serve``), on the settings of :func:`gateway_config`;
* for signing and certification, a test PKI (tests/fakes/signing_pki.py: root, issuing CA, OCSP
  responder and CRLs), a time-stamping authority (tests/fakes/tsa.py) and a remote signing service
  (tests/fakes/remote_signer.py, confirming at once) in a server thread.

The examples run in the guide's order in one working directory (with a copy of docs/examples and a
one-page PDF), so an example can use what an earlier one captured or saved. The matching rules are
in tests/docs/guide.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.daemon import free_port, write_config
from tests.docs import guide
from tests.fakes import signing_pki
from tests.fakes.pdfs import one_page_pdf
from tests.fakes.remote_signer import FakeRemoteSigner
from tests.fakes.threaded import ServerThread
from tests.fakes.tsa import FakeTsa
from tests.harness import AGENCY_KEY, UNIT

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "agency-guide.md"
PAYMENT_SECRET = "guide-payment-secret"
KEY_ALIAS = "agency-seal"  # the guide's signing key alias (a file key)
REMOTE_ALIAS = "giam-doc-remote"  # the guide's remote-signing key alias (a CSC service that confirms at once)
REMOTE_SECRET = "guide-remote-secret"
PASSPHRASE = b"guide-key-passphrase"


# ---------------------------------------------------------------- the gateway's settings, in one place


def gateway_config(path: Path, *, port: int, sandbox: str, tmp: Path, tsa_url: str, keys: dict[str, Path],
                   root_pem: Path, remote_url: str) -> Path:
    """Everything the example agency needs: its key and unit (tests/daemon.py's defaults), the
    catalogue pulled from the sandbox, payments on the sandbox's platform, a file signing key it may
    use, and a certifying authority it may certify for. After deny-by-default grants land, this is
    the one place to add them."""
    write_config(
        path, port, sandbox, tmp / "gw.sqlite3",
        # the guide shows the catalogue; the sandbox has no faults queued at start-up
        catalogue={"enabled": True, "interval": "1d", "retry_interval": "1s", "strictness": "warn"},
        # short waits: the fault-injection example shows a retry that succeeds a moment later
        retry={"delays": ["1s", "1s", "2s"], "give_up_after": "1h", "jitter": 0.0},
        payment={"enabled": True, "init_url": f"{sandbox}/payment/init", "query_url": f"{sandbox}/payment/query",
                 "bill_url": f"{sandbox}/payment/bill", "partner_code": "SANDBOX-DOITAC", "secret": PAYMENT_SECRET,
                 "ip": "127.0.0.1", "timeout": "5s",
                 # the lost-callback example: reconciliation asks the platform 3 s after the INIT
                 "pending_after": "3s", "interval": "1s"},
        signing={"tsa_urls": [tsa_url], "trust_roots": [str(root_pem)], "workers": 1,
                 "remote_poll_interval": "100ms"},
        certification={"level": "B-T"},
    )
    # secrets never inline in a settings file (docs/security.md): files beside it
    (tmp / "key-passphrase").write_bytes(PASSPHRASE)
    (tmp / "remote-secret").write_text(REMOTE_SECRET, encoding="utf-8")
    with path.open("a", encoding="utf-8") as f:
        f.write(f'''
[[signing.keys]]
alias = "{KEY_ALIAS}"
source = "file"
agencies = ["{UNIT}"]
key_file = "{keys['key']}"
cert_file = "{keys['cert']}"
chain_files = ["{keys['chain']}"]
passphrase_file = "{tmp / 'key-passphrase'}"

[[signing.keys]]
alias = "{REMOTE_ALIAS}"
source = "remote"
agencies = ["{UNIT}"]
url = "{remote_url}"
credential_id = "cred-giam-doc"
client_secret_file = "{tmp / 'remote-secret'}"

[[certification.authorities]]
code = "{UNIT}"
name = "UBND xã Mẫu Sơn, tỉnh Thử Nghiệm"
key = "{KEY_ALIAS}"
agencies = ["{UNIT}"]
''')
    return path


# ---------------------------------------------------------------- the live world


@dataclass
class Live:
    variables: dict[str, str]
    workdir: Path
    env: dict[str, str]


def _wait_ok(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("agency-guide")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVCGW_")}
    servers = ServerThread()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pki_server = signing_pki.PkiServer()
        pki_url, _ = servers.serve(pki_server.app)
        pki = signing_pki.TestPki(pki_url)
        pki_server.pki = pki
        tsa_url, _ = servers.serve(FakeTsa(pki).app)
        remote = FakeRemoteSigner(REMOTE_SECRET)
        remote.add("cred-giam-doc", pki.signer("giam-doc"),
                   [pki.inter.cert.public_bytes(serialization.Encoding.DER)], auto_confirm=True)
        remote_url, _ = servers.serve(remote.app)
        keys = pki.write_signer_files("agency", tmp / "keys", PASSPHRASE)
        root_pem, _ = pki.write_roots(tmp / "roots")

        gw_port, sb_port = free_port(), free_port()
        gw, sandbox = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{sb_port}"
        sb_log = tmp / "sandbox.log"
        with sb_log.open("ab") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "gateway", "sandbox", "--port", str(sb_port),
                 "--payment-callback", f"{gw}/v1/payments/confirm", "--payment-secret", PAYMENT_SECRET],
                stdout=out, stderr=out, env=env, cwd=tmp))
        _wait_ok(f"{sandbox}/_sandbox/record", procs[-1], sb_log)

        config = gateway_config(tmp / "gateway.toml", port=gw_port, sandbox=sandbox, tmp=tmp, tsa_url=tsa_url,
                                keys=keys, root_pem=root_pem, remote_url=remote_url)
        gw_log = tmp / "dvcgw.log"
        with gw_log.open("ab") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(config)],
                                          stdout=out, stderr=out, env=env, cwd=tmp))
        _wait_ok(f"{gw}/readyz", procs[-1], gw_log)

        work = tmp / "work"
        shutil.copytree(ROOT / "docs" / "examples", work / "docs" / "examples")
        (work / "document.pdf").write_bytes(one_page_pdf("Giay phep so 123"))
        yield Live({"GW": gw, "SANDBOX": sandbox, "KEY": AGENCY_KEY}, work, env)
    finally:
        for proc in reversed(procs):
            _stop(proc)
        servers.close()


# ---------------------------------------------------------------- the tests


def test_every_curl_example_gives_the_documented_answer(live: Live) -> None:
    parsed = guide.parse_guide(GUIDE.read_text(encoding="utf-8"))
    assert not parsed.unchecked_curls, (
        f"sh blocks with curl but no ```http answer block after them (lines {parsed.unchecked_curls}); "
        f"add the answer, or mark the block `sh norun`")
    unknown = set(parsed.variables) - set(live.variables)
    assert not unknown, f"the guide defines variables the test does not provide: {sorted(unknown)}"
    assert set(parsed.variables) >= set(live.variables), "the guide's ```sh env block must define GW, SANDBOX, KEY"
    assert len(parsed.examples) >= 30, f"only {len(parsed.examples)} examples found: is the convention intact?"
    writes = re.compile(r"\s(-X|-d|--data\S*|-F)\s")
    repeated = [e.line for e in parsed.examples if e.answer.eventually and writes.search(e.script)]
    assert not repeated, f"'# a moment later' examples are repeated: they must only read (lines {repeated})"
    variables = dict(live.variables)
    for example in parsed.examples:
        variables |= guide.run_example(example, variables, live.workdir, live.env)


# The checker itself: an answer that drifts from the guide must fail.

def _outcome(status: int, body: str, **headers: str) -> guide.Outcome:
    return guide.Outcome(status, {k.replace("_", "-").lower(): v for k, v in headers.items()}, body, "")


def test_a_drifted_answer_is_reported() -> None:
    answer = guide.parse_answer('HTTP/1.1 202 Accepted\n\n{"event_id": "<$EVENT>", "sequence": 1, '
                                '"delivery": "pending"}')
    ok, captured = guide.compare(answer, _outcome(202, '{"event_id": "41", "sequence": 1, "delivery": "pending", '
                                                       '"extra": true}'), {})
    assert ok == [] and captured == {"EVENT": "41"}
    problems, _ = guide.compare(answer, _outcome(200, '{"event_id": "41", "sequence": "1"}'), {})
    assert problems == ["status: expected 202, got 200", "body.sequence: expected 1, got '1'",
                        "body.delivery: missing"]
    problems, _ = guide.compare(answer, _outcome(202, '{"event_id": null, "sequence": 1, "delivery": "pending"}'), {})
    assert problems == ["body.event_id: expected a value for $EVENT, got null"]


def test_lists_prefixes_variables_and_headers_are_matched() -> None:
    answer = guide.parse_answer('HTTP/1.1 200 OK\nContent-Type: application/pdf\n\n'
                                '{"url": "$SANDBOX/pay/…", "items": [{"a": 1}, "…"], "all": [1, 2], "t": "<time>"}')
    variables = {"SANDBOX": "http://127.0.0.1:9"}
    good = _outcome(200, '{"url": "http://127.0.0.1:9/pay/x", "items": [{"a": 1, "b": 2}, 3], "all": [1, 2], '
                         '"t": "2026-12-06T00:00:00Z"}', Content_Type="application/pdf")
    assert guide.compare(answer, good, variables)[0] == []
    bad = _outcome(200, '{"url": "http://127.0.0.1:8/pay/x", "items": [], "all": [1, 2, 3], "t": null}',
                   Content_Type="text/html")
    assert guide.compare(answer, bad, variables)[0] == [
        "body.url: expected a string starting 'http://127.0.0.1:9/pay/', got 'http://127.0.0.1:8/pay/x'",
        "body.items: expected 1 or more elements, got 0",
        "body.all: expected 2 elements, got 3",
        "header content-type: expected 'application/pdf', got 'text/html'",
    ]


def test_a_curl_block_without_an_answer_is_found() -> None:
    text = ("```sh env\nGW=http://127.0.0.1:8080\n```\n\n```sh\ncurl -sS $GW/healthz\n```\n\nprose\n\n"
            "```http\nHTTP/1.1 200 OK\n```\n\n```sh norun\ncurl -sS $GW/x\n```\n"
            "```sh\n# a moment later\ncurl -sS $GW/healthz\n```\n"
            "```http\nHTTP/1.1 200 OK\n\n{\"status\": \"ok\"}\n```\n")
    parsed = guide.parse_guide(text)
    assert parsed.variables == ["GW"]
    assert parsed.unchecked_curls == [5]
    assert [(e.line, e.answer.status, e.answer.eventually, e.answer.body) for e in parsed.examples] == [
        (18, 200, True, {"status": "ok"})]
