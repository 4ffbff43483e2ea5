"""Issue 18: one version, written in core/version.py only; one pinned dependency set,
requirements.lock, current with what the project installs; a CHANGELOG.md that names the version."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata

from core.version import __version__
from gateway.cli import main
from gateway.openapi import document
from tests.ship.helpers import ROOT


def test_the_version_is_written_once() -> None:
    """pyproject.toml takes it from core/version.py; the installed metadata, ``dvcgw --version`` and
    the OpenAPI document carry it; no other file of the packages spells it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "core.version.__version__"}
    assert metadata.version("dvc-gateway") == __version__
    assert document()["info"]["version"] == __version__
    literal = re.compile(rf"['\"]{re.escape(__version__)}['\"]")
    spelt = [str(p.relative_to(ROOT)) for pkg in ("core", "gateway", "adapters", "signing", "queues", "config",
                                                   "monitoring") for p in (ROOT / pkg).rglob("*.py")
             if literal.search(p.read_text(encoding="utf-8"))]
    assert spelt == ["core/version.py"], spelt


def test_dvcgw_version(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"dvcgw {__version__}"


def test_the_changelog_names_the_version() -> None:
    """Keep a Changelog: an Unreleased section, then the newest release heading is this version."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert headings[:2] == ["Unreleased", __version__], headings
    assert "keepachangelog.com" in text


def test_the_lock_is_current_and_every_pin_is_hashed() -> None:
    """scripts/lock.py --check: the lock equals the runtime set installed in this venv (`make lock`
    after a dependency change); every pin is exact and carries at least one sha256."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "lock.py"), "--check"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = (ROOT / "requirements.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n\n", 1)[1].strip())
    assert len(entries) > 20
    for entry in entries:
        assert re.match(r"^[a-z0-9-]+==[^\s]+ \\\n", entry) and "--hash=sha256:" in entry, entry
