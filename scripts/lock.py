"""requirements.lock: the pinned runtime dependency set of dvc-gateway, with hashes.

The set is read from the environment this runs in (the project's .venv, where ``make`` installed
``.[dev]`` constrained by the lock itself): dvc-gateway's own requirements, with their extras and
environment markers, followed through every installed distribution's metadata. Dev tools are not
in it. The container image installs exactly this set (``pip install --require-hashes``), and the
wheel test in tests/ship installs it into a clean venv from ``.cache/wheelhouse``.

    python scripts/lock.py            # rewrite requirements.lock (downloads each pinned file once to hash it)
    python scripts/lock.py --check    # exit 1 when the lock and the installed set differ (offline)

Hashes are of the files pip picks for CPython 3.11 on x86_64 glibc Linux (this machine's kind and the
image's default platform). An image for another platform needs the lock regenerated there.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PROJECT = "dvc-gateway"
HEADER = ("# The pinned runtime dependency set of dvc-gateway (scripts/lock.py writes it from the project's\n"
          "# .venv; `make lock` after changing pyproject.toml's dependencies; tests/ship checks it is current).\n"
          "# Used by the Dockerfile (pip --require-hashes), by `make install` as constraints, and by the wheel test.\n")


def _requirements(dist: metadata.Distribution, extras: set[str]) -> list[Requirement]:
    wanted = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
            wanted.append(req)
    return wanted


def closure(project: str = PROJECT) -> dict[str, str]:
    """Canonical name -> installed version of every distribution ``project`` needs at run time."""
    found: dict[str, str] = {}
    todo: list[tuple[str, set[str]]] = [(project, set())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), frozenset(extras))
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(name)
        if canonicalize_name(name) != canonicalize_name(project):
            found[canonicalize_name(name)] = dist.version
        for req in _requirements(dist, extras):
            todo.append((req.name, set(req.extras)))
    return dict(sorted(found.items()))


def read_lock(path: Path = LOCK) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip().rstrip("\\").strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = version.split()[0]
    return pins


def _hashes(pins: dict[str, str]) -> dict[str, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                        *[f"{n}=={v}" for n, v in pins.items()]], check=True)
        out: dict[str, list[str]] = {n: [] for n in pins}
        for f in sorted(Path(tmp).iterdir()):
            stem = canonicalize_name(f.name.split("-")[0])
            name = next(n for n in pins if canonicalize_name(n) == stem)
            out[name].append(hashlib.sha256(f.read_bytes()).hexdigest())
    return out


def write(pins: dict[str, str]) -> None:
    hashes = _hashes(pins)
    lines = [HEADER]
    for name, version in pins.items():
        lines.append(f"{name}=={version}" + "".join(f" \\\n    --hash=sha256:{h}" for h in hashes[name]))
    LOCK.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--check", action="store_true", help="compare, do not write")
    args = ap.parse_args()
    pins = closure()
    if not args.check:
        write(pins)
        print(f"{LOCK.name}: {len(pins)} pins")
        return 0
    locked = read_lock()
    if locked == pins:
        return 0
    for name in sorted(set(locked) | set(pins)):
        if locked.get(name) != pins.get(name):
            print(f"{name}: lock {locked.get(name, '-')}, installed {pins.get(name, '-')}", file=sys.stderr)
    print("requirements.lock is out of date: run `make lock`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
