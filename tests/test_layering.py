"""Layering (issue 12, DESIGN.md): config/ and the error tree (core/) sit at the bottom; queues/,
adapters/, signing/, config/, monitoring/ and core/ never import the application (gateway/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOWER = ("core", "queues", "adapters", "signing", "config", "monitoring", "audit")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", LOWER)
def test_lower_packages_do_not_import_the_application(package: str) -> None:
    """Every import in the package's modules, also the ones inside functions, is checked."""
    offending = [f"{p.relative_to(ROOT)}: {name}" for p in sorted((ROOT / package).rglob("*.py"))
                 for name in _imports(p) if name == "gateway" or name.startswith("gateway.")]
    assert offending == []


def test_core_imports_nothing_of_the_project() -> None:
    """The error tree is importable by every package because it imports none of them."""
    ours = ("gateway", *LOWER)
    offending = [f"{p.name}: {name}" for p in sorted((ROOT / "core").rglob("*.py"))
                 for name in _imports(p) if name.split(".")[0] in ours and name.split(".")[0] != "core"]
    assert offending == []
