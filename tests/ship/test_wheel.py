"""Issue 18: ``python -m build`` makes a wheel that installs in a clean venv and runs. Offline:
the build uses this venv's backend (``--no-isolation``; setuptools, wheel and build are dev
extras), and the clean venv gets the locked dependency set, hash-checked, from ``.cache/wheelhouse``
(``make wheelhouse``, which ``make test`` runs, downloads it once). The wheel's own requirements
must then be met (``pip check``), so a dependency missing from requirements.lock fails here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from core.version import __version__
from tests.ship.helpers import ROOT

WHEELHOUSE = ROOT / ".cache" / "wheelhouse"
PACKAGES = ["core", "gateway", "adapters", "signing", "queues", "config", "monitoring", "audit"]


def run(argv: list[str], cwd: Path, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV", "DVCGW_"))}
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env | {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"})
    assert done.returncode == 0, f"{argv}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def build_wheel(tmp: Path) -> Path:
    """Build from a copy of the sources, so no build/ or egg-info left in the work tree can leak in."""
    src = tmp / "src"
    for name in PACKAGES:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)], tmp)
    (wheel,) = (tmp / "dist").glob("*.whl")
    return wheel


@pytest.mark.slow
def test_the_wheel_installs_in_a_clean_venv_and_runs(tmp_path: Path) -> None:
    """The wheel is named with the single-source version and carries the stamp fonts (with their
    licence), the WSDLs and the example settings but no tests; in a fresh venv with only the locked
    set, ``pip check`` is clean, ``dvcgw --version`` prints that version, the installed fonts are the
    ones the signing engine opens, and ``dvcgw check-config`` accepts the installed example settings
    (with the sandbox's secret files where they name them)."""
    assert (WHEELHOUSE / ".stamp").is_file(), "no .cache/wheelhouse: run `make wheelhouse` (make test does)"
    wheel = build_wheel(tmp_path)
    assert wheel.name == f"dvc_gateway-{__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("signing/fonts/DejaVuSans-1000upem.ttf", "signing/fonts/DejaVuSans-vi-1000upem.ttf",
                   "signing/fonts/LICENSE-DejaVu.txt", "config/example.toml"):
        assert needed in names, needed
    assert any(n.startswith("adapters/vnpt_receipts/wsdl/") for n in names)
    assert not any(n.startswith("tests/") for n in names)

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    py, bindir = venv / "bin" / "python", venv / "bin"
    run([str(py), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(WHEELHOUSE),
         "--require-hashes", "-r", str(ROOT / "requirements.lock")], tmp_path)
    run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)], tmp_path)
    run([str(py), "-m", "pip", "check"], tmp_path)
    # the work tree is not on the path: cwd is elsewhere and PYTHON* variables are dropped
    assert run([str(bindir / "dvcgw"), "--version"], tmp_path).strip() == f"dvcgw {__version__}"
    where = run([str(py), "-c", "import signing.engine as e, config; print(e.FONT_PATH.is_file(), e.FONT_PATH); "
                 "print(config.__file__)"], tmp_path).split("\n")
    assert where[0].startswith(f"True {venv}"), where
    example = Path(where[1]).parent / "example.toml"
    assert str(example).startswith(str(venv))
    # its secret files are named relative to the working folder, as `make run` uses them from the
    # repository (secrets never sit in a settings file, issue 17): an operator puts them there
    shutil.copytree(ROOT / "config" / "sandbox-secrets", tmp_path / "config" / "sandbox-secrets")
    assert "OK" in run([str(bindir / "dvcgw"), "check-config", str(example)], tmp_path)
