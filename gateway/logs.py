"""Logging set-up: one line per record, key=value, to stderr.

Personal data never reaches a log line: the code logs classes, counts and codes, never dossier
contents, owner names or ID numbers (checked by tests that scan captured logs).
"""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str | None = None) -> None:
    lvl = (level or os.environ.get("DVCGW_LOG_LEVEL") or "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
