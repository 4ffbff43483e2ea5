"""The log scan (tests/security/logscan.py): it finds a planted leak in every form, and at the end
of the suite it finds no configured secret and no fixture personal data in any log line of the
test process or of a daemon subprocess."""

from __future__ import annotations

import json
import logging
import unicodedata
from pathlib import Path

from tests.harness import AGENCY_KEY, PORTAL_PASSWORD
from tests.security.logscan import SCAN, Collector, LogScan, find_hits, personal_values

ID_NUMBER = "079199000001"  # tests/samples.py
NAME = "Trần Thị Mẫu"


def planted(*messages: str) -> Collector:
    """Log ``messages`` through a real logger into a collector of their own (the session's
    collector never sees them: the planted leaks must not fail the real scan)."""
    collector = Collector()
    logger = logging.getLogger("dvcgw.test.planted")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(collector)
    try:
        for message in messages:
            logger.warning("%s", message)
        try:
            raise ValueError(f"bad key {AGENCY_KEY}")
        except ValueError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(collector)
    return collector


def test_the_scanner_finds_a_planted_secret_and_planted_personal_data_in_every_form() -> None:
    """A secret in a message or in an exception's traceback, an ID number, and a name raw,
    decomposed (NFD) or JSON-escaped are each found; a clean line is not."""
    collector = planted(f"login with {PORTAL_PASSWORD}", f"payload {{'SoGiayToChuHoSo': '{ID_NUMBER}'}}",
                        unicodedata.normalize("NFD", NAME), json.dumps({"ChuHoSo": NAME}),
                        "dossier 000.00.01.H55-240315-00012 delivered")
    hits = find_hits(collector.lines, {PORTAL_PASSWORD, AGENCY_KEY}, {ID_NUMBER, NAME})
    found = {(h.kind, h.needle, h.line.text.splitlines()[0][:20]) for h in hits}
    assert {(k, n) for k, n, _ in found} == {("secret", PORTAL_PASSWORD), ("secret", AGENCY_KEY),
                                             ("personal data", ID_NUMBER), ("personal data", NAME)}
    assert len([h for h in hits if h.needle == NAME]) == 2  # NFD and JSON-escaped
    assert not [h for h in hits if "delivered" in h.line.text]
    assert ID_NUMBER not in hits[0].describe() and PORTAL_PASSWORD not in " ".join(h.describe() for h in hits)


def test_a_daemon_log_file_is_scanned_too(tmp_path: Path) -> None:
    """A leak in a daemon subprocess's log file (a scan of its own, not the session's) is found."""
    scan = LogScan()
    scan.secrets.add(PORTAL_PASSWORD)
    log = tmp_path / "daemon.log"
    log.write_text(f"INFO started\nWARNING owner {ID_NUMBER}\n", encoding="utf-8")
    scan.log_files.append(log)
    assert [(h.kind, h.needle) for h in scan.hits()] == [("personal data", ID_NUMBER)]


def test_the_session_collector_sees_the_project_loggers_at_info() -> None:
    """The session's collector is on the root logger, and a project logger's INFO line reaches it
    (the root logger's default WARNING would drop it)."""
    before = len(SCAN.collector.lines)
    logging.getLogger("gateway.test.logscan").info("an ordinary line, nothing personal")
    assert [line.text for line in SCAN.collector.lines[before:]] == ["an ordinary line, nothing personal"]


def test_the_suite_logs_hold_no_secret_and_no_personal_data() -> None:
    """Runs last (logscan.pytest_collection_modifyitems): every log line of this run, in this
    process and in each daemon's log file, is free of every secret the suite configured and of
    the fixtures' personal data."""
    personal = personal_values()
    assert ID_NUMBER in personal and NAME in personal
    hits = SCAN.hits()
    assert not hits, "\n".join(sorted({h.describe() for h in hits}))
