"""Issue 18: the image runs with a read-only root filesystem and one writable data volume. No
Docker engine runs here, so the test builds the same situation with the kernel's own tools: a
real ``dvcgw serve`` in a private mount namespace (``unshare``, as root) where ``/`` is remounted
read-only and only the data folder is writable, with the Dockerfile's environment. It accepts and
delivers a dossier, serves /healthz, stops cleanly on SIGTERM, and everything it wrote is in the
data folder (the root, /tmp included, refuses every write: an attempt would be an error in the log or
a failed start)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.daemon import free_port, wait_ready, write_config
from tests.harness import AGENCY_KEY, Sandbox
from tests.load import wait_delivered
from tests.samples import sample_dossier
from tests.ship.helpers import ROOT

pytestmark = pytest.mark.slow


def image_env(data: Path) -> dict[str, str]:
    """The runtime stage's ENV lines of the Dockerfile, with /var/lib/dvcgw moved to ``data``."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text()).split("FROM ${PYTHON_IMAGE}\n")[-1]
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for key, value in re.findall(r"(\w+)=(\S+)", line):
                env[key] = value.replace("/var/lib/dvcgw", str(data))
    env.pop("PATH")
    assert env["DVCGW_STORAGE__PATH"].startswith(str(data)) and env["HOME"] == str(data)
    return env


@contextmanager
def short_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="dvcgw-ro-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_the_daemon_runs_on_a_read_only_root_with_one_writable_data_folder(sandbox: Sandbox) -> None:
    assert os.geteuid() == 0 and shutil.which("unshare"), "needs root and util-linux's unshare (CI runs as root)"
    with short_folder() as tmp:
        data, etc = tmp / "data", tmp / "etc"
        data.mkdir()
        etc.mkdir()
        port = free_port()
        cfg = write_config(etc / "dvcgw.toml", port, sandbox.url, data / "ignored.sqlite3")
        env = {"PATH": os.environ["PATH"], **image_env(data), "DVCGW_SERVER__LISTEN": f"127.0.0.1:{port}"}
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro / && cd "$0" && exec "$@"'
        log_path = tmp / "daemon.log"
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                "unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(data),
                sys.executable, "-m", "gateway", "serve", "--config", str(cfg),
                stdout=log, stderr=log, env=env, cwd=str(tmp))
        url = f"http://127.0.0.1:{port}"
        m = "000.00.01.H55-240316-00042"
        try:
            await wait_ready(url, proc, log_path, 60)
            async with aiohttp.ClientSession(headers={"X-API-Key": AGENCY_KEY}) as http:
                async with http.put(f"{url}/v1/dossiers/{m}", json=sample_dossier(m)) as r:
                    assert r.status == 202, await r.text()
                async with http.get(f"{url}/healthz") as r:
                    assert r.status == 200
            await wait_delivered(url, [m], 60)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            status = await asyncio.wait_for(proc.wait(), 60)
        text = log_path.read_text()
        assert status == 0, text[-3000:]
        assert "Read-only file system" not in text and "level=ERROR" not in text, text[-3000:]
        assert (data / "dvcgw.sqlite3").is_file() and not (data / "ignored.sqlite3").exists()
    assert any(c["service"] == "DongBoHoSoMC" for c in (await sandbox.record())["dossiers"][m])
