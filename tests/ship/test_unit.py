"""Issue 18: deploy/dvcgw.service passes ``systemd-analyze verify`` (Debian's systemd; the test
points ExecStart at this venv's real ``dvcgw``, since verify checks the executable exists) and keeps
the unit's rules: Type=notify (the daemon sends READY=1, tests/ship/test_sdnotify.py),
Restart=on-failure, the hardening options, an EnvironmentFile for secrets, a stop timeout that
covers the drain."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.ship.helpers import DEPLOY, seconds, stop_budget

UNIT = DEPLOY / "dvcgw.service"


def directives(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> every value given (systemd allows repeats, e.g. Environment=)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is missing: scripts/install-system-deps.sh installs systemd"
    dvcgw = Path(sys.executable).parent / "dvcgw"
    assert dvcgw.is_file()
    unit = tmp_path / "dvcgw.service"
    unit.write_text(text.replace("/opt/dvcgw/bin/dvcgw", str(dvcgw)))
    return subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, timeout=120)


def test_systemd_analyze_verify_passes_without_a_warning(tmp_path: Path) -> None:
    """verify exits 0 and prints nothing; a copy with a misspelt key draws a warning (so it can fail)."""
    done = verify(tmp_path, UNIT.read_text())
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stdout + done.stderr
    broken = verify(tmp_path, UNIT.read_text().replace("Type=notify", "Tpye=notify"))
    assert "Unknown key" in broken.stderr


def test_the_unit_rules() -> None:
    d = directives(UNIT.read_text())
    one = {k: v[-1] for k, v in d.items()}
    assert one["Service.Type"] == "notify" and one["Service.NotifyAccess"] == "main"
    assert one["Service.Restart"] == "on-failure"
    assert one["Service.NoNewPrivileges"] == "yes" and one["Service.ProtectSystem"] == "strict"
    assert one["Service.PrivateTmp"] == "yes"
    assert "/var/lib/dvcgw" in one["Service.ReadWritePaths"].split()
    assert one["Service.EnvironmentFile"].lstrip("-").startswith("/etc/dvcgw/")
    # the secret files dvcgw.toml names are where the containers have them too
    assert one["Service.BindReadOnlyPaths"] == "/etc/dvcgw/secrets:/run/secrets"
    named = re.findall(r'_file = "([^"]+)"', (DEPLOY / "dvcgw.toml").read_text())
    assert named and all(p.startswith("/run/secrets/") for p in named), named
    assert one["Service.User"] == "dvcgw" and one["Service.ExecStart"].split()[1] == "serve"
    assert "DVCGW_STORAGE__PATH=/var/lib/dvcgw/dvcgw.sqlite3" in d["Service.Environment"]
    assert one["Service.KillSignal"] == "SIGTERM"
    assert seconds(one["Service.TimeoutStopSec"]) > stop_budget()
    assert one["Install.WantedBy"] == "multi-user.target"
