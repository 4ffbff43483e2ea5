"""docs/operator-guide.md: its links lead somewhere and the commands it names exist."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from gateway.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operator-guide.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_anchor(line.lstrip("#")) for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("#")}


def test_every_link_of_the_guide_resolves() -> None:
    """Each relative link names a file of the repository, and each #anchor a heading of it."""
    bad = []
    for target in LINK.findall(GUIDE.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        file = (GUIDE.parent / path).resolve() if path else GUIDE
        if not file.exists() or (anchor and file.suffix == ".md" and anchor not in _anchors(file)):
            bad.append(target)
    assert bad == []


def test_the_commands_the_guide_names_exist() -> None:
    """Every ``dvcgw <command>`` the guide shows is a command of the CLI."""
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(sub.choices)
    named = set(re.findall(r"`dvcgw ([a-z][a-z-]*)", GUIDE.read_text(encoding="utf-8")))
    assert named <= commands, named - commands
    assert {"backup", "restore", "maintenance", "dlq"} <= named
