"""The 766 service-quality indicators, computed live from the dossier stream (docs/kpi.md).

``KpiService`` (:mod:`monitoring.kpi.service`) is what the application holds (``app[KPI]``):
``latest()``, ``report(period_id, unit)``, ``metrics_text()``, and ``observe(work, recorded)``
for the sync engine.
"""

from monitoring.kpi.indicators import INDICATOR_NAMES, LEFT_OUT, KpiReport, KpiRow
from monitoring.kpi.periods import Period, PeriodError, parse_period
from monitoring.kpi.service import ALL_UNITS, Calculator, KpiService

__all__ = ["ALL_UNITS", "INDICATOR_NAMES", "LEFT_OUT", "Calculator", "KpiReport", "KpiRow", "KpiService",
           "Period", "PeriodError", "parse_period"]
