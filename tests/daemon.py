"""Run ``dvcgw serve`` as a real subprocess on a free 127.0.0.1 port, for crash and soak tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from config.schema import SECRET_FIELDS, key_digest
from tests.harness import AGENCY_KEY, OPERATOR_KEY, PORTAL_PASSWORD, UNIT
from tests.security.logscan import remember_log_file, remember_secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, port: int, portal_url: str, store: Path, *, agency: dict[str, Any] | None = None,
                 **sections: dict[str, Any]) -> Path:
    """A complete settings file for one daemon; ``sections`` override or add keys per table,
    ``agency`` adds keys to the one agency (e.g. its ``tls_subjects``)."""
    tables: dict[str, dict[str, Any]] = {
        # no load balancer watches a test daemon: SIGTERM need not hold the listener open
        "server": {"listen": f"127.0.0.1:{port}", "shutdown_grace": "2s", "drain_delay": "0s"},
        "storage": {"path": str(store), "synchronous": "full"},
        "retry": {"delays": ["200ms", "500ms", "1s"], "give_up_after": "1h", "jitter": 0.0},
        "circuit": {"failure_threshold": 5, "cool_down": "500ms"},
        "portal": {"adapter_url": portal_url, "username": "u", "password": PORTAL_PASSWORD, "dstcode": "T",
                   "timeout": "5s", "connect_retries": 0},
        "operator": {"api_key": OPERATOR_KEY},
        # no catalogue pull at start-up: it would log in and spend the sandbox's queued faults
        # before the test's own calls (tests/catalogue covers the puller)
        "catalogue": {"enabled": False},
        # no request rate limit (issue 17): tests drive many requests at once; the limit's own
        # tests (tests/security) set it
        "limits": {"rate": 0},
    }
    for name, values in sections.items():
        tables[name] = {**tables.get(name, {}), **values}
    _secrets_to_files(tables, path.parent / f"{path.stem}.secrets")
    lines: list[str] = []
    for name, values in tables.items():
        lines.append(f"[{name.replace('__', '.')}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    remember_secret(AGENCY_KEY)  # the key as a digest: no secret inline (docs/security.md)
    lines += ["[[agencies]]", f'code = "{UNIT}"', f'api_key_sha256 = "{key_digest(AGENCY_KEY, "")}"',
              f'units = ["{UNIT}"]', 'procedures = ["*"]']  # deny by default (issue 17): every procedure code granted
    lines += [f"{k} = {_toml_value(v)}" for k, v in (agency or {}).items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _secrets_to_files(tables: dict[str, dict[str, Any]], folder: Path) -> None:
    """A settings file never holds a secret inline (docs/security.md): each secret of ``tables``
    (config.schema.SECRET_FIELDS) goes to a file of its own in ``folder``, named by ``<key>_file``."""
    names = {name for fields in SECRET_FIELDS.values() for name in fields}
    for table, values in tables.items():
        for key in [k for k in values if k in names and values[k] != ""]:
            folder.mkdir(mode=0o700, exist_ok=True)
            target = folder / f"{table}.{key}"
            secret = str(values.pop(key))
            remember_secret(secret)
            target.write_text(secret, encoding="utf-8")
            values[f"{key}_file"] = str(target)


async def wait_ready(url: str, proc: asyncio.subprocess.Process, log: Path, timeout: float,
                     tls: ssl.SSLContext | None = None) -> None:
    """Poll ``{url}/readyz`` until it answers 200; fail with the end of ``log`` if the daemon
    exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls or True)) as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"daemon exited: {log.read_text()[-2000:]}")
            try:
                async with http.get(f"{url}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"daemon not ready: {log.read_text()[-2000:]}")


class Daemon:
    def __init__(self, config: Path, port: int, log: Path, env: dict[str, str] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        """``tls``: the client context for a daemon on HTTPS ([server] tls_cert), used by start()."""
        self.config, self.port, self.log = config, port, log
        remember_log_file(log)  # the suite-wide log scan reads it at the end
        self.extra_env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    async def start(self, timeout: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DVCGW_")} | self.extra_env
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", "serve", "--config", str(self.config),
                stdout=log, stderr=log, env=env)
        await wait_ready(self.url, self.proc, self.log, timeout, self.tls)

    async def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            await self.kill(signal.SIGTERM)
