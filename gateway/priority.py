"""The delivery worker's CPU priority: accepting always comes first, and delivery never starves.

``[queue] delivery_priority = "idle"`` (the default) puts the worker's event-loop thread in Linux's
idle scheduling class (``SCHED_IDLE``): it runs only on CPU time no other task wants, and a waking
acceptor preempts it at once. Alone, that class could stop delivery for as long as something else
kept every CPU busy (a flood of accepts, or a runaway process on the same machine). So a guard
thread, which stays in the normal class at the worker's niceness, watches a heartbeat the loop
beats; when the loop has not run for :data:`STARVED_AFTER_S`, the guard moves it back to the
normal class (still at ``delivery_nice``) and logs it, and returns it to the idle class once it has
run freely again for :data:`CALM_AFTER_S`. ``"nice"`` keeps the worker in the normal class, at
``delivery_nice`` only.

While the loop holds the store's write lock it runs in the normal class (:meth:`IdlePriority.boost`):
an idle-class task preempted while holding a lock the acceptors wait for would make them wait
for CPU time nobody else wants (priority inversion).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator

log = logging.getLogger("dvcgw.priority")
BEAT_S = 0.25
STARVED_AFTER_S = 3.0
CALM_AFTER_S = 60.0


class IdlePriority:
    """Idle class for the calling thread's event loop, with a starvation guard (see the module)."""

    def __init__(self, *, beat_s: float = BEAT_S, starved_after_s: float = STARVED_AFTER_S,
                 calm_after_s: float = CALM_AFTER_S) -> None:
        self._beat_s, self._starved_after, self._calm_after = beat_s, starved_after_s, calm_after_s
        self._last_beat = time.monotonic()
        self._tid = threading.get_native_id()
        self._stop = threading.Event()
        self._switch = threading.Lock()  # the guard thread and the loop both change the class
        self._boosted = False
        self._beater: asyncio.Task[None] | None = None
        self._guard: threading.Thread | None = None
        self.idle = False
        self.rescues = 0  # how often the guard had to lift the loop out of the idle class

    def start(self) -> bool:
        """Start the guard (in the normal class), then move this thread to the idle class. False
        where the system has no idle class (not Linux): the worker then keeps its niceness only."""
        if not hasattr(os, "SCHED_IDLE"):
            return False
        self._beater = asyncio.get_running_loop().create_task(self._beat(), name="dvcgw-priority-beat")
        self._guard = threading.Thread(target=self._watch, name="dvcgw-priority-guard", daemon=True)
        self._guard.start()  # created before the switch: it keeps the normal class
        self._set(idle=True)
        return True

    async def stop(self) -> None:
        self._stop.set()
        if self._beater is not None:
            self._beater.cancel()
            await asyncio.gather(self._beater, return_exceptions=True)
        if self._guard is not None:
            await asyncio.to_thread(self._guard.join)

    async def _beat(self) -> None:
        while True:
            self._last_beat = time.monotonic()
            await asyncio.sleep(self._beat_s)

    def _watch(self) -> None:
        calm_since = time.monotonic()
        while not self._stop.wait(self._beat_s):
            now = time.monotonic()
            late = now - self._last_beat
            if self.idle and late > self._starved_after:
                log.warning("the delivery worker got no CPU for %.1f s in the idle class; it runs in the normal "
                            "class (at its niceness) until the machine calms down", late)
                self.rescues += 1
                self._set(idle=False)
                calm_since = now
            elif not self.idle:
                if late > self._beat_s * 4:
                    calm_since = now
                elif now - calm_since > self._calm_after:
                    self._set(idle=True)

    @contextlib.contextmanager
    def boost(self) -> Iterator[None]:
        """The normal class for the duration (the loop holds the store's write lock)."""
        with self._switch:
            lift = self.idle and not self._boosted
            if lift:
                self._apply(os.SCHED_OTHER)
                self._boosted = True
        try:
            yield
        finally:
            if lift:
                with self._switch:
                    self._boosted = False
                    if self.idle:
                        self._apply(os.SCHED_IDLE)

    def _set(self, *, idle: bool) -> None:
        with self._switch:
            if self._boosted or self._apply(os.SCHED_IDLE if idle else os.SCHED_OTHER):
                self.idle = idle

    def _apply(self, policy: int) -> bool:
        try:
            os.sched_setscheduler(self._tid, policy, os.sched_param(0))
        except OSError as exc:  # not permitted here (a container's seccomp profile): niceness only
            log.warning("cannot change the delivery worker's scheduling class: %s", exc)
            return False
        return True
