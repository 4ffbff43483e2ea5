"""``InboundPuller``: dossiers citizens submitted on the portal, pulled and put in the jobs outbox
for the provincial system (issue 15 §2; docs/inbound.md).

One round (:meth:`InboundPuller.pull`) reads pages of the configured pull service (``[inbound]
service``, ``endpoint``, ``params``; the service is not public, spec §1.2 [UNCERTAIN]) from the
persisted cursor on:

* each dossier with a ``MaHoSo`` becomes a delivery body (:func:`adapters.provincial_system.envelope.body`:
  the dossier as pulled, its version, its textual state and the §7.9 code), put on the
  ``provincial`` topic under its ``MaHoSo`` with ``dedupe`` = its version, so a dossier pulled twice
  unchanged is delivered once, and a changed one again;
* a state §7.9 does not map (``interoperating``, ``posting``, anything unlisted) is counted under
  one fixed label value and logged with the dossier code and the raw value (cut), nothing else;
* after every dossier of a page is durable, the page's next cursor (the reply's ``cursor_field``)
  is written; a reply without one, an empty page, a short page or ``max_pages`` ends the round.

A failed call ends the round (counted, logged); the next round starts from the cursor written.
Logs carry codes and counts only, never a dossier's content.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from adapters.national_portal.client import PortalClient
from adapters.national_portal.envelope import result_rows
from adapters.provincial_system import envelope
from config.schema import InboundSettings, Settings
from core.errors import PortalError, QueueUnavailable
from core.filework import FileWorker
from gateway.inbound import store
from gateway.inbound.states import state_code
from gateway.times import iso_utc
from monitoring.metrics import Metrics
from queues.jobs import PROVINCIAL, Jobs

log = logging.getLogger("dvcgw.inbound")
T = TypeVar("T")

#: a raw state value is logged only when it looks like a state word (§7.9's are lower-case ASCII):
#: anything else, a misconfigured state_field pointing at a name say, is logged by its length only
_STATE_WORD = re.compile(r"[A-Za-z0-9_-]{1,40}")


def shown_state(raw: object) -> str:
    """A raw state value for a log line, without risking personal data."""
    text = str(raw) if raw is not None else ""
    if _STATE_WORD.fullmatch(text):
        return repr(text)
    return "none" if raw is None else f"<{type(raw).__name__} of {len(text)} characters, not shown>"


@dataclass
class Round:
    """What one round did."""

    pages: int = 0
    queued: int = 0
    unchanged: int = 0
    invalid: int = 0
    unknown_states: int = 0
    failed: bool = False
    cursors: list[str] = field(default_factory=list)


class InboundPuller(FileWorker):
    """The inbound dossier puller of one gateway instance."""

    def __init__(self, settings: Settings, portal: PortalClient, jobs: Jobs, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__("dvcgw-inbound")
        self.settings: InboundSettings = settings.inbound
        self.path: Path = settings.inbound.file(settings.storage.path)
        self._portal = portal
        self._jobs = jobs
        self._metrics = metrics
        self._clock = clock
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._conn = await self._in_thread(lambda: store.open_store(self.path))

    def start_puller(self) -> None:
        """Pull every ``interval`` until :meth:`close` (the daemon; tests call :meth:`pull`)."""
        self._start_task(self._run(), "dvcgw-inbound")

    async def cursor(self) -> str:
        """The persisted cursor ("" before the first page)."""
        conn = self._connection()
        return await self._in_thread(lambda: store.read_cursor(conn, self.settings.service))

    # ------------------------------------------------------------------ one round

    async def pull(self) -> Round:
        """One round: pages from the cursor on, each dossier put in the outbox, the cursor advanced."""
        async with self._lock:
            done = Round()
            cursor = await self.cursor()
            while done.pages < self.settings.max_pages:
                try:
                    reply = await self._portal.call(self.settings.service, self._params(cursor),
                                                    endpoint=self.settings.endpoint)
                except PortalError as exc:
                    self._metrics.inbound_pulls.labels("failed").inc()
                    log.warning("inbound pull %s failed (%s); the next round starts from the same cursor",
                                self.settings.service, type(exc).__name__)
                    done.failed = True
                    break
                self._metrics.inbound_pulls.labels("ok").inc()
                done.pages += 1
                rows = result_rows(reply)
                await self._queue(rows, done)
                nxt = self._next_cursor(reply)
                if nxt is None or nxt == cursor:
                    break
                await self._save(nxt)
                done.cursors.append(nxt)
                cursor = nxt
                if len(rows) < self.settings.page_size:
                    break
            return done

    def _params(self, cursor: str) -> dict[str, Any]:
        s = self.settings
        params: dict[str, Any] = {**s.extra_params(), s.cursor_param: cursor}
        if s.page_size_param:
            params[s.page_size_param] = str(s.page_size)
        return params

    def _next_cursor(self, reply: Mapping[str, Any]) -> str | None:
        value = reply.get(self.settings.cursor_field)
        if isinstance(value, bool) or not isinstance(value, str | int):
            return None
        return str(value)

    async def _queue(self, rows: list[dict[str, Any]], done: Round) -> None:
        """Each dossier of a page into the outbox (durable when this returns)."""
        pulled_at = iso_utc(self._clock()) or ""
        for i, dossier in enumerate(rows):
            mahoso = dossier.get("MaHoSo")
            if not isinstance(mahoso, str) or not mahoso.strip():
                done.invalid += 1
                self._metrics.inbound_dossiers.labels("invalid").inc()
                log.warning("inbound pull %s: row %d of page %d has no MaHoSo; skipped",
                            self.settings.service, i, done.pages)
                continue
            body = self._body(mahoso, dossier, pulled_at, done)
            added = await self._jobs.put(PROVINCIAL, mahoso, body, dedupe=body["version"])
            if added:
                done.queued += 1
            else:
                done.unchanged += 1
            self._metrics.inbound_dossiers.labels("queued" if added else "unchanged").inc()

    def _body(self, mahoso: str, dossier: dict[str, Any], pulled_at: str, done: Round) -> dict[str, Any]:
        raw = dossier.get(self.settings.state_field)
        code = state_code(raw)
        if code is None:
            done.unknown_states += 1
            self._metrics.inbound_unknown_states.labels("unknown").inc()
            log.warning("inbound dossier %s: DVCQG state %s maps to no code (spec §7.9); delivered without "
                        "a state, the provincial system keeps its own", mahoso[:64], shown_state(raw))
        remote = raw if isinstance(raw, str) else "" if raw is None else str(raw)
        return envelope.body(dossier, mahoso=mahoso, version=envelope.version_of(dossier), remote_state=remote,
                             state_code=code, pulled_at=pulled_at)

    async def _save(self, cursor: str) -> None:
        conn, now = self._connection(), self._clock()
        await self._in_thread(lambda: store.write_cursor(conn, self.settings.service, cursor, now))

    # ------------------------------------------------------------------ schedule

    async def _run(self) -> None:
        """A round at once, then one every ``interval``; a crash of a round is logged, not fatal."""
        while True:
            try:
                await self.pull()
            except QueueUnavailable as exc:
                log.error("inbound pull: the jobs outbox cannot take dossiers (%s); the next round retries", exc)
            except Exception:
                log.exception("inbound pull crashed; the next round retries")
            await asyncio.sleep(float(self.settings.interval))

    # ------------------------------------------------------------------ inside

