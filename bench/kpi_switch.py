"""The daemon of bench_kpi's ``within`` scenario: ``dvcgw serve`` as gateway/cli.py runs it, with
one switch added for the measurement, never the product's: ``POST /bench/kpi?on=1|0`` turns the
766 indicators' observer on or off in the running process, so that their cost is measured in
one process (a second process differs from the first by as much as the cost: bench_kpi's
``calibrate``).

Off, the observer returns at once and a periodic computation that falls due is put off until the
indicators are on again (it runs then, in an on slice); switching off writes what is buffered
before it answers (the write belongs to the slice that observed it). Everything else is the
product's own code. Run: ``python -m bench.kpi_switch --config FILE``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from aiohttp import web

from config.schema import Settings
from gateway import app as gateway_app
from gateway import cli
from gateway.appkeys import KPI
from monitoring.kpi.indicators import KpiReport
from monitoring.kpi.service import KpiService
from queues.api import Outcome, Work


class Switched(KpiService):
    """The indicators with an on/off switch (on at start, as ``dvcgw serve`` runs them)."""

    on = True
    due = False

    def observe(self, work: Work, recorded: Sequence[tuple[Outcome, float]]) -> None:
        if self.on:
            KpiService.observe(self, work, recorded)

    async def refresh(self) -> KpiReport:
        if self.on:
            return await KpiService.refresh(self)
        self.due = True
        await self.flush()
        latest = self.latest()
        assert latest is not None  # the first computation runs at start, switched on
        return latest

    async def switch(self, on: bool) -> None:
        """On: observe again (and run a computation put off meanwhile); off: write what is
        buffered, stop observing, and write what was observed during that write."""
        if on:
            self.on = True
            if self.due:
                self.due = False
                asyncio.get_running_loop().create_task(self.refresh())
            return
        await self.flush()
        self.on = False
        await self.flush()


async def _switch(request: web.Request) -> web.Response:
    kpi = request.app[KPI]
    assert isinstance(kpi, Switched)
    await kpi.switch(request.query.get("on") == "1")
    return web.json_response({"on": kpi.on})


def main() -> int:
    """``dvcgw serve`` (gateway.cli's own start-up: the event loop, the logs, the listener) with
    :class:`Switched` as the indicators and the switch's route added to the application."""
    create_app = gateway_app.create_app

    def switched_app(settings: Settings) -> web.Application:
        application = create_app(settings)
        application.router.add_post("/bench/kpi", _switch)
        return application

    # gateway.app's names, read when ``dvcgw serve`` starts: the switched indicators, the route
    setattr(gateway_app, "KpiService", Switched)  # noqa: B010
    setattr(gateway_app, "create_app", switched_app)  # noqa: B010
    return cli.main(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
