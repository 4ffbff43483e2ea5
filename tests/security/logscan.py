"""The suite-wide log scan (issue 17, Hygiene): no secret and no personal data in any log.

A pytest plugin (``pytest_plugins`` in tests/conftest.py). For the whole session it

* keeps every log record of the test process (:class:`Collector`, a handler on the root logger,
  put back before each test in case a test re-routed logging, as ``setup_logging`` does); the
  project's own loggers log at INFO and up meanwhile (the root logger's WARNING would hide INFO);
* remembers every secret the suite configures: each :class:`~config.schema.Settings` built in the
  process (the secrets :data:`~config.schema.SECRET_FIELDS` names, however they were given), plus
  the ones tests hand to daemon subprocesses in settings files (:func:`remember_secret`);
* remembers the log file of every daemon subprocess (:func:`remember_log_file`, tests/daemon.py).

``tests/security/test_logscan.py::test_the_suite_logs_hold_no_secret_and_no_personal_data`` is
moved to the very end of the run (:func:`pytest_collection_modifyitems`) and fails, naming the
test and logger of each hit (values masked), if any log holds one of them or one of
:func:`personal_values` (the fixtures' ID numbers, names, phone numbers and e-mail addresses, also
JSON-escaped or decomposed). Values shorter than :data:`MIN_LEN` cannot be told from ordinary
text and are not looked for.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.schema import Settings, secret_values

MIN_LEN = 6
SCAN_TEST = "test_the_suite_logs_hold_no_secret_and_no_personal_data"
#: the project's loggers, raised to INFO for the session so that their INFO lines are scanned too
PROJECT_LOGGERS = ("dvcgw", "gateway", "queues", "adapters", "signing", "monitoring", "config", "core", "audit")
#: the fields of a dossier or progress item that hold personal data (spec §6.1, §6.9)
PERSONAL_FIELDS = ("ChuHoSo", "SoGiayToChuHoSo", "DinhDanhCHS", "SoDienThoai", "Email", "NguoiXuLy")
#: personal values other fixtures carry (an ID number echoed in a portal rejection, certification
#: requesters and signers)
OTHER_PERSONAL = ("001099012345", "Bí Mật Tên Người", "987654321098", "Nguyễn Văn A", "Trần Thị B",
                  "001099000001", "Trần Thị Bích", "079199000123")


#: fixture values in personal fields that are job titles, not people
NOT_PERSONAL = frozenset({"Chuyên viên"})


@dataclass(frozen=True)
class Line:
    """One log record as the scan sees it: where it came from and its whole text."""

    test: str
    logger: str
    level: str
    text: str


@dataclass(frozen=True)
class Hit:
    needle: str
    kind: str  # "secret" or "personal data"
    line: Line

    def describe(self) -> str:
        masked = self.needle[:2] + "…" + f"({len(self.needle)} chars)"
        return f"{self.kind} {masked} in {self.line.logger} {self.line.level} during {self.line.test}"


class Collector(logging.Handler):
    """Keeps every record it sees as a :class:`Line` (message, exception and stack included)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.lines: list[Line] = []
        self.test = "<collection>"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string is the logging call's bug, not a reason to lose the line
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + record.stack_info
        self.lines.append(Line(self.test, record.name, record.levelname, text))


def variants(value: str) -> set[str]:
    """The forms a value takes in a log line: as is, NFC and NFD, and JSON-escaped."""
    forms = {value, unicodedata.normalize("NFC", value), unicodedata.normalize("NFD", value)}
    forms |= {json.dumps(f)[1:-1] for f in list(forms)}
    return {f for f in forms if len(f) >= MIN_LEN}


def find_hits(lines: Iterable[Line], secrets: Iterable[str], personal: Iterable[str]) -> list[Hit]:
    """Every line that holds one of ``secrets`` or ``personal`` (in any of its :func:`variants`)."""
    needles = [(form, value, "secret") for value in set(secrets) for form in variants(value)]
    needles += [(form, value, "personal data") for value in set(personal) for form in variants(value)]
    return [Hit(value, kind, line) for line in lines for form, value, kind in needles if form in line.text]


def _fixture_values(item: Any) -> Iterator[str]:
    if isinstance(item, dict):
        for key, value in item.items():
            if key in PERSONAL_FIELDS and isinstance(value, str) and value:
                yield value
            else:
                yield from _fixture_values(value)
    elif isinstance(item, list):
        for value in item:
            yield from _fixture_values(value)


def personal_values() -> set[str]:
    """The personal data the test fixtures carry (tests/samples.py, tests/fakes/portal.py, …)."""
    from tests.fakes.portal import dossier, progress
    from tests.samples import sample_dossier, sample_progress

    found = set(_fixture_values([sample_dossier(), sample_progress(n=9), dossier("X"), progress("X")]))
    found |= {name.rsplit(" ", 1)[0] for name in found if name[-1:].isdigit()}  # "Lê Văn Thử 3" → "Lê Văn Thử"
    return {v for v in found | set(OTHER_PERSONAL) if len(v) >= MIN_LEN and v not in NOT_PERSONAL}


def public_credentials() -> set[str]:
    """The built-in sandbox's credentials (config/sandbox-secrets/, read by config/example.toml):
    public on purpose, and words such as "sandbox" are everywhere in paths and messages."""
    folder = Path(__file__).resolve().parents[2] / "config" / "sandbox-secrets"
    return {p.read_text(encoding="utf-8").strip() for p in folder.iterdir() if p.is_file() and p.suffix != ".md"}


class LogScan:
    """The session's collector, secrets and daemon log files."""

    def __init__(self) -> None:
        self.collector = Collector()
        self.secrets: set[str] = set()
        self.log_files: list[Path] = []
        self.scanned: tuple[int, int, int, int] | None = None  # what the last hits() looked at

    def lines(self) -> list[Line]:
        out = list(self.collector.lines)
        for path in self.log_files:
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace")
                out += [Line(f"daemon log {path}", "daemon", "-", t) for t in text.splitlines()]
        return out

    def hits(self) -> list[Hit]:
        secrets = {s for s in self.secrets if len(s) >= MIN_LEN} - public_credentials()
        lines, personal = self.lines(), personal_values()
        self.scanned = (len(lines), len(self.log_files), len(secrets), len(personal))
        return find_hits(lines, secrets, personal)


SCAN = LogScan()


def remember_secret(value: str) -> None:
    """A secret a test hands to a subprocess (a settings file): the scan looks for it too."""
    if value:
        SCAN.secrets.add(value)


def remember_log_file(path: Path) -> None:
    """A daemon subprocess's log file (tests/daemon.py): the scan reads it at the end."""
    SCAN.log_files.append(path)


_post_init = Settings.__post_init__


def _remembering_post_init(self: Settings) -> None:
    _post_init(self)
    SCAN.secrets.update(secret_values(self))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "logscan: the suite-wide log scan, run last")
    Settings.__post_init__ = _remembering_post_init  # type: ignore[method-assign]
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    logging.getLogger().addHandler(SCAN.collector)


def pytest_unconfigure(config: pytest.Config) -> None:
    Settings.__post_init__ = _post_init  # type: ignore[method-assign]
    logging.getLogger().removeHandler(SCAN.collector)


def pytest_runtest_setup(item: pytest.Item) -> None:
    SCAN.collector.test = item.nodeid
    root = logging.getLogger()
    if SCAN.collector not in root.handlers:  # a test re-routed logging (gateway.logs.setup_logging)
        root.addHandler(SCAN.collector)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The scan runs after every other test, whatever the order of the files."""
    last = [i for i in items if i.name == SCAN_TEST]
    items[:] = [i for i in items if i.name != SCAN_TEST] + last


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line at the end of the run: what the scan looked at (when it ran)."""
    if SCAN.scanned is not None:
        lines, files, secrets, personal = SCAN.scanned
        terminalreporter.write_line(f"log scan: {lines} log lines (test process and {files} daemon log files) "
                                    f"checked for {secrets} secrets and {personal} personal values")
