"""The configuration reference (docs/configuration.md) is generated from config/schema.py."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

from config import reference
from config.loader import Duration

_NINETY = Duration(90.0)


def test_reference_matches_the_schema() -> None:
    """docs/configuration.md is exactly what ``python -m config.reference --write`` makes: a setting
    added, removed, retyped or re-described without regenerating it fails here."""
    current = reference.REFERENCE.read_text(encoding="utf-8")
    assert current == reference.render(), "run: python -m config.reference --write"


def test_every_setting_has_help() -> None:
    """Each key carries help text in the schema (a comment above it or at the end of its line)."""
    assert reference.undocumented() == [], "add a comment to these fields in config/schema.py"


def test_every_table_and_key_of_the_schema_is_listed() -> None:
    """The reference walks the whole tree: nested tables and arrays of tables included."""
    names = {t.heading: {k.name for k in t.keys} for t in reference.tables()}
    assert "listen" in names["[server]"]
    assert "fetch_min_bytes" in names["[queue.kafka]"]
    assert {"code", "api_key", "units"} <= names["[[agencies]]"]
    assert "pkcs12_file" in names["[[signing.keys]]"]
    assert "dossier_sync" in names["[kpi.targets]"]


@dataclass(frozen=True)
class _Inner:
    # one comment above
    # over two lines
    a: int = 1
    b: str = "x"  # at the end
    c: Duration = _NINETY

    d: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Root:
    inner: _Inner = field(default_factory=_Inner)


def test_help_comes_from_comments_and_a_block_covers_the_fields_below_it() -> None:
    """A comment block covers the fields right below it; a blank line ends it; an end-of-line
    comment belongs to its own field only."""
    (table,) = reference.tables(_Root)
    keys = {k.name: k for k in table.keys}
    assert keys["a"].help == "one comment above over two lines"
    assert keys["b"].help == "at the end"
    assert keys["c"].help == "see `a`"
    assert keys["d"].help == ""
    assert (keys["c"].type, keys["c"].default) == ("duration", '`"90s"`')
    assert reference.undocumented(_Root) == ["inner.d"]


def test_check_mode_fails_on_drift(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``--check`` exits 1 when the file differs, 0 when it is current."""
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n", encoding="utf-8")
    monkeypatch.setattr(reference, "REFERENCE", stale)
    assert reference.main(["--check"]) == 1
    assert reference.main(["--write"]) == 0
    assert reference.main(["--check"]) == 0


def test_the_command_runs() -> None:
    """``python -m config.reference --check`` is the command the docs name."""
    out = subprocess.run([sys.executable, "-m", "config.reference", "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
