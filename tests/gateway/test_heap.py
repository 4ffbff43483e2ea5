"""Once ``dvcgw serve`` serves, what start-up left alive is frozen out of Python's full
collections (gateway.serving.settle_heap)."""

from __future__ import annotations

import asyncio
import gc
import re
from pathlib import Path

import pytest

from gateway.serving import settle_heap
from tests.daemon import Daemon, free_port, write_config
from tests.harness import Sandbox


def _walked(obj: object) -> bool:
    """Whether the collector's generations (what a collection walks) hold ``obj``."""
    return any(o is obj for o in gc.get_objects())


def test_settle_heap_freezes_what_is_alive_and_not_what_comes_after() -> None:
    before = gc.get_freeze_count()
    alive = [[n] for n in range(1_000)]
    try:
        assert _walked(alive[0])
        frozen = settle_heap()
        assert frozen >= before + len(alive)
        assert not _walked(alive[0]) and not _walked(alive)
        later = [alive]
        assert _walked(later)
        gc.collect()  # a full collection does not bring frozen objects back
        assert not _walked(alive[0])
    finally:
        gc.unfreeze()
    assert _walked(alive[0])


@pytest.mark.slow
async def test_the_daemon_settles_its_heap_once_it_serves(sandbox: Sandbox, tmp_path: Path) -> None:
    """A real ``dvcgw serve`` logs the freeze once, after its "ready" line, with the tens of
    thousands of objects start-up leaves (modules, settings, application)."""
    port = free_port()
    cfg = write_config(tmp_path / "gw.toml", port, sandbox.url, tmp_path / "gw.sqlite3")
    d = Daemon(cfg, port, tmp_path / "daemon.log")
    await d.start()
    try:
        text = ""
        for _ in range(100):  # the line follows the "ready" line, which start() does not wait for
            text = d.log.read_text(encoding="utf-8")
            if "start-up heap settled" in text:
                break
            await asyncio.sleep(0.05)
        settled = re.findall(r"start-up heap settled: (\d+) objects", text)
        assert len(settled) == 1, text[-2_000:]
        assert int(settled[0]) > 10_000
        assert text.index("dvcgw ready on") < text.index("start-up heap settled")
    finally:
        await d.stop()
