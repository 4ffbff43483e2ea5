"""The dossier-code rule of spec §8, between the sync engine and the portal client.

Agencies keep their own ``MaHoSo`` in the gateway's API and in the queue; :class:`CodedPortal`
(the engine's portal) puts the portal's code into every dossier, progress item and lookup on the
way out, and drops ``MaHoSoKhac`` (never forwarded). :class:`CodeMapper` decides the portal code
of a local one, once, and keeps it in :class:`~gateway.portalcode.store.CodeStore`:

0. a mapping already stored is used as it is (every later push and progress item);
1. the first dash segment contains ``[portal] province_code``, or the rule is off (no province
   code), or the unit has no ``madinhdanh``: the code goes unchanged and nothing is stored;
2. [POLICY, gateway addition] the portal already holds the local code itself (a dossier synced
   before the rule was configured): keep it;
3. (spec step 2) the snapshot carries ``MaHoSoKhac``: use it;
4. (spec step 3) draw ``<MaDinhDanh>-<yyMMdd of NgayTiepNhan>-<5 digits>`` from the stored
   per-unit, per-day sequence, and (spec step 5) adopt it only if ``TraCuuHoSo`` does not find it
   on the portal, else draw the next number.

Steps 2 and 4 ask the portal; a lookup the portal answers with an error is
:class:`~core.errors.PortalUnavailable` here (existence unknown, §5.3: retried, never guessed, never
dead-lettered). Without a snapshot (a progress item or the engine's lookup before any was
delivered) steps 3–4 cannot run: the code is not decided yet, so the dossier is "not on the
portal" and its progress waits, as it would anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from config.schema import Settings
from core.errors import PortalRejected, PortalUnavailable
from gateway.dossier.spec import LOCAL_ONLY_FIELD
from gateway.portalcode.store import CodeConflict, CodeStore
from gateway.sync import Portal

log = logging.getLogger("dvcgw.portalcode")
T = TypeVar("T")

ON_PORTAL, ALTERNATIVE, GENERATED = "on_portal", "alternative", "generated"
MAX_DRAWS = 20  # generated codes found on the portal in a row before the dossier is dead-lettered
_CACHE_SIZE = 65_536
_NONE = ""  # cached "no mapping stored"

Lookup = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True)
class Resolved:
    """A dossier's portal code, and whether the portal holds it when the deciding lookup told."""

    code: str
    on_portal: bool | None = None


def generated_code(prefix: str, day: str, number: int) -> str:
    """Spec §8 step 3: ``<MaDinhDanh>-<yyMMdd>-<5 digits>`` (more digits past 99,999)."""
    return f"{prefix}-{day}-{number:05d}"


class CodeMapper:
    """Local code → portal code (module docstring). ``start`` opens the file when the rule is on."""

    def __init__(self, province: str, identifiers: Mapping[str, str], path: Path, lookup: Lookup, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.province = province
        self._ids = dict(identifiers)
        self._path = path
        self._lookup = lookup
        self._clock = clock
        self._store: CodeStore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._absent: OrderedDict[str, None] = OrderedDict()  # local codes the portal was found not to hold
        self.shared_queue = False  # the Kafka backend: other instances may deliver the same dossiers

    @classmethod
    def from_settings(cls, settings: Settings, lookup: Lookup, *, clock: Callable[[], float] = time.time) -> CodeMapper:
        p = settings.portal
        mapper = cls(p.province_code, settings.unit_identifiers(), p.codes_file(settings.storage.path), lookup,
                     clock=clock)
        mapper.shared_queue = settings.queue.backend == "kafka"
        return mapper

    @property
    def active(self) -> bool:
        """The rule is on: a province code is configured (mappings are then kept and used)."""
        return bool(self.province)

    async def start(self) -> None:
        if not self.active:
            return
        if self.shared_queue:
            log.warning("the dossier-code rule keeps its codes in this instance's file (%s): on the Kafka "
                        "backend run one instance only (docs/decisions.md)", self._path.name)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dvcgw-codes")
        self._store = await self._run(lambda: CodeStore(self._path, clock=self._clock))

    async def close(self) -> None:
        if self._store is not None:
            await self._run(self._store.close)
            self._store = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # ── deciding ──────────────────────────────────────────────────────────────────────────

    def _keeps(self, local: str) -> bool:
        return not self.province or self.province in local.split("-", 1)[0]

    async def known(self, local: str) -> str | None:
        """The portal code of ``local`` as far as decided (for the status answer): None while it
        has still to be drawn."""
        if self._keeps(local):
            return local
        stored = await self._stored(local)
        if stored is not None:
            return stored
        return None if local.split("-", 1)[0] in self._ids else local

    async def resolve(self, local: str, snapshot: Mapping[str, Any] | None) -> Resolved | None:
        """The portal code of ``local`` (steps in the module docstring); None when it needs a
        snapshot that is not at hand. Raises PortalUnavailable (lookup refused or down),
        PortalThrottled/PortalAuthFailed (lookup), PortalRejected (MaHoSoKhac taken by another
        dossier, or MAX_DRAWS codes in a row taken), CodeStoreUnavailable."""
        if self._keeps(local):
            return Resolved(local)
        stored = await self._stored(local)
        if stored is not None:
            return Resolved(stored)
        prefix = self._ids.get(local.split("-", 1)[0])
        if prefix is None:
            return Resolved(local)
        if local not in self._absent:
            if await self._exists(local):
                return await self._adopt(local, local, ON_PORTAL, on_portal=True)
            _remember(self._absent, local, None)
        if snapshot is None:
            return None
        alternative = snapshot.get(LOCAL_ONLY_FIELD)
        if isinstance(alternative, str) and alternative:
            return await self._adopt(local, alternative, ALTERNATIVE, on_portal=None)
        return await self._draw(local, prefix, _day(snapshot))

    async def _draw(self, local: str, prefix: str, day: str) -> Resolved:
        store = self._require_store()
        for _ in range(MAX_DRAWS):
            number = await self._run(lambda: store.allocate(prefix, day))
            code = generated_code(prefix, day, number)
            if not await self._exists(code):
                return await self._adopt(local, code, GENERATED, on_portal=False)
            log.warning("a generated dossier code is already on the portal; drawing the next number")
        raise PortalRejected("code_rule", f"{MAX_DRAWS} generated dossier codes in a row are already on the portal "
                                          "(spec §8 step 5): check [[agencies]] madinhdanh")

    async def _adopt(self, local: str, portal: str, rule: str, *, on_portal: bool | None) -> Resolved:
        store = self._require_store()
        try:
            stored = await self._run(lambda: store.adopt(local, portal, rule))
        except CodeConflict as exc:
            raise PortalRejected("code_rule", "the dossier's MaHoSoKhac is already the portal code of another "
                                              "dossier (spec §8 step 2)") from exc
        _remember(self._cache, local, stored)
        log.info("dossier code mapped for the portal (rule %s)", rule)
        return Resolved(stored, on_portal if stored == portal else None)

    async def _exists(self, code: str) -> bool:
        try:
            return await self._lookup(code)
        except PortalRejected as exc:
            raise PortalUnavailable(f"TraCuuHoSo answered {exc.code} while a dossier code was checked: "
                                    "existence unknown, retried (spec §5.3)") from exc

    async def _stored(self, local: str) -> str | None:
        if self._store is None:
            return None
        hit = self._cache.get(local)
        if hit is None:
            store = self._store
            hit = await self._run(lambda: store.get(local)) or _NONE
            _remember(self._cache, local, hit)
        else:
            self._cache.move_to_end(local)
        return hit or None

    def _require_store(self) -> CodeStore:
        if self._store is None:
            raise RuntimeError("CodeMapper.start() was not awaited")
        return self._store

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)


def _remember(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)


def _day(snapshot: Mapping[str, Any]) -> str:
    """yyMMdd of ``NgayTiepNhan`` (validated ``yyyyMMddHHmmss``, required)."""
    received = str(snapshot.get("NgayTiepNhan") or "")
    if len(received) < 8 or not received[:8].isdigit():
        raise PortalRejected("code_rule", "NgayTiepNhan is needed to generate the dossier's portal code (spec §8)")
    return received[2:8]


class CodedPortal:
    """The engine's :class:`~gateway.sync.Portal`: the client, with portal codes on the way out."""

    def __init__(self, portal: Portal, mapper: CodeMapper) -> None:
        self._portal = portal
        self.mapper = mapper

    async def lookup(self, mahoso: str) -> bool:
        resolved = await self.mapper.resolve(mahoso, None)
        if resolved is None:
            return False  # no code yet: the portal cannot hold it
        if resolved.on_portal is not None:
            return resolved.on_portal
        return await self._portal.lookup(resolved.code)

    async def sync_dossiers(self, dossiers: Sequence[Mapping[str, Any]], *, updating: bool) -> None:
        outgoing = [await self._dossier(d) for d in dossiers]
        await self._portal.sync_dossiers(outgoing, updating=updating)

    async def push_progress(self, items: Sequence[Mapping[str, Any]]) -> None:
        outgoing = [await self._item(i) for i in items]
        await self._portal.push_progress(outgoing)

    async def _dossier(self, d: Mapping[str, Any]) -> Mapping[str, Any]:
        local = d.get("MaHoSo")
        resolved = await self.mapper.resolve(local, d) if isinstance(local, str) else None
        code = resolved.code if resolved is not None else local
        if code == local and LOCAL_ONLY_FIELD not in d:
            return d
        return {**{k: v for k, v in d.items() if k != LOCAL_ONLY_FIELD}, "MaHoSo": code}

    async def _item(self, item: Mapping[str, Any]) -> Mapping[str, Any]:
        local = item.get("MaHoSo")
        if not isinstance(local, str):
            return item
        resolved = await self.mapper.resolve(local, None)
        if resolved is None:  # the engine sends progress only for a dossier the portal holds
            raise PortalUnavailable("progress for a dossier whose portal code is not decided yet")
        return item if resolved.code == local else {**item, "MaHoSo": resolved.code}
