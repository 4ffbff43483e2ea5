"""The delivery worker's CPU priority (gateway.priority): its loop runs in the idle scheduling
class, and a guard thread lifts it back to the normal class when it starves, then returns it to
the idle class once it runs freely again."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes")

# run in a child process: the test runner's own threads must not change scheduling class
SCRIPT = r"""
import asyncio, json, os, threading, time
from gateway.priority import IdlePriority

def policy():
    return {os.SCHED_IDLE: "idle", os.SCHED_OTHER: "normal"}.get(os.sched_getscheduler(threading.get_native_id()))

async def main():
    p = IdlePriority(beat_s=0.05, starved_after_s=0.4, calm_after_s=0.6)
    out = {"started": p.start(), "first": policy()}
    with p.boost():                      # holding the store's write lock: the normal class
        out["boosted"] = policy()
    out["after_boost"] = policy()
    await asyncio.sleep(0.2)
    time.sleep(1.0)                      # the loop gets no turn: what starvation looks like to the guard
    await asyncio.sleep(0.1)
    out["starved"], out["rescues"] = policy(), p.rescues
    deadline = time.monotonic() + 10
    while policy() != "idle" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)        # beats again: calm, back to the idle class
    out["calm"] = policy()
    await p.stop()
    print(json.dumps(out))

asyncio.run(main())
"""


async def test_idle_class_with_a_starvation_guard() -> None:
    """The loop starts in the idle class and runs in the normal class while it holds the store's
    write lock; a loop that has not run for longer than the starvation limit is moved to the
    normal class (and counted); after a calm spell it is idle again."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SCRIPT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["started"] is True and result["first"] == "idle"
    assert result["boosted"] == "normal" and result["after_boost"] == "idle"
    assert result["starved"] == "normal" and result["rescues"] >= 1
    assert result["calm"] == "idle"
