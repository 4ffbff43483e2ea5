"""Issue 18: the README is what a newcomer follows. Every repository path it names exists, the two
commands it gives are make targets, and its deploy section points at each file in deploy/."""

from __future__ import annotations

import re
import subprocess

from tests.ship.helpers import DEPLOY, ROOT

README = ROOT / "README.md"


def test_every_path_the_readmes_name_exists() -> None:
    for doc in (README, DEPLOY / "README.md"):
        text = doc.read_text(encoding="utf-8")
        named = set(re.findall(r"`((?:\.\./)?(?:deploy|docs|scripts|config|monitoring|tests|core|gateway|bench)"
                               r"/[\w./-]*?)`", text))
        named |= set(re.findall(r"\]\(((?!https?:)[^)#]+)\)", text))
        missing = sorted(p for p in named if not (doc.parent / p).exists() and not (ROOT / p).exists())
        assert missing == [], f"{doc.name}: {missing}"


def test_the_newcomer_commands_are_make_targets() -> None:
    """``make run`` and ``make test`` (and the lock and wheelhouse targets named) resolve; ``make -n``
    only prints what would run."""
    for target in ("run", "test", "lock", "wheelhouse"):
        done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    text = README.read_text(encoding="utf-8")
    assert "make run" in text.split("##")[0] and "make test" in text.split("##")[0]


def test_the_deploy_section_names_every_deploy_file() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Deploy"):].split("\n## ", 1)[0]
    assert "not run here" in section.lower()
    for path in ("Dockerfile", "deploy/compose.yml", "deploy/compose.single.yml", "deploy/dvcgw.service",
                 "deploy/dvcgw.toml"):
        assert f"`{path}`" in section, path
