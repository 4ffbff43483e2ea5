"""`dvcgw serve` daemons configured for the Kafka backend (see tests/daemon.py for the process side)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.daemon import Daemon, free_port, write_config


def kafka_daemon(tmp_path: Path, name: str, portal_url: str, bootstrap: str, prefix: str, group: str,
                 *, partitions: int = 4, request_timeout: str = "3s", **sections: dict[str, Any]) -> Daemon:
    """A daemon on ``[queue] backend = "kafka"`` with its own config, log and (unused) SQLite path;
    ``sections`` add or override settings tables."""
    port = free_port()
    cfg = write_config(
        tmp_path / f"{name}.toml", port, portal_url, tmp_path / f"{name}.sqlite3",
        queue={"backend": "kafka", "lease": "15s", "poll_interval": "200ms"},
        queue__kafka={"bootstrap_servers": bootstrap, "topic_prefix": prefix, "group_id": group,
                      "partitions": partitions, "request_timeout": request_timeout},
        **sections,
    )
    return Daemon(cfg, port, tmp_path / f"{name}.log")


async def until(cond: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``cond`` (a real condition) every 50 ms; fail with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
