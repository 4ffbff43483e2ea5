"""Times in the HTTP API: ISO 8601 in UTC, to the second (issue 13), in one place."""

from __future__ import annotations

import datetime as dt


def iso_utc(ts: float | None) -> str | None:
    """``ts`` (Unix seconds) as ISO 8601 in UTC; None stays None."""
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")
