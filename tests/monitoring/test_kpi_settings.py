"""[kpi] settings: the documented defaults, the example file, and bad values naming their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.schema import load
from core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.toml"


def test_defaults_and_the_example_file() -> None:
    """The example sets the defaults; the file lives beside the store unless [kpi] path says."""
    default, example = load(None, environ={}).kpi, load(EXAMPLE, environ={}).kpi
    assert default == example
    assert (default.enabled, default.sync_lag_slo, default.refresh_interval, default.flush_interval) == (
        True, 3600.0, 300.0, 5.0)
    assert (default.open_dossier_cut, default.no_deadline, default.population_db_codes) == ("now", "on_time", ())
    assert default.targets.for_indicator("ONLINE_SHARE") == 0.8
    assert default.targets.for_indicator("VNEID_SHARE") is None
    assert default.file("var/dvcgw.sqlite3") == Path("var/kpi.sqlite3")
    assert load(None, environ={"DVCGW_KPI__PATH": "/srv/k.db"}).kpi.file("var/x") == Path("/srv/k.db")


@pytest.mark.parametrize(("text", "key"), [
    ("[kpi]\nsync_lag_slo = '0s'\n", "kpi.sync_lag_slo"),
    ("[kpi]\nsync_lag_slo = 'an hour'\n", "kpi.sync_lag_slo"),
    ("[kpi]\nrefresh_interval = '2h'\n", "kpi.refresh_interval"),
    ("[kpi]\nflush_interval = '0s'\n", "kpi.flush_interval"),
    ("[kpi]\nopen_dossier_cut = 'later'\n", "kpi.open_dossier_cut"),
    ("[kpi]\nno_deadline = 'maybe'\n", "kpi.no_deadline"),
    ("[kpi]\npopulation_db_codes = ['']\n", "kpi.population_db_codes"),
    ("[kpi]\nso_hoa_full_at = 0.9\n", "kpi.so_hoa_full_at"),
    ("[kpi]\nonline_share_max_points = 0\n", "kpi.online_share_max_points"),
    ("[kpi.targets]\nonline_share = 80\n", "kpi.targets.online_share"),
    ("[kpi.targets]\nend_to_end_share = 0.9\n", "kpi.targets.end_to_end_share"),
    ("[kpi]\nenabled = 'yes'\n", "kpi.enabled"),
])
def test_bad_kpi_settings_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(f, environ={})
    assert info.value.key == key, str(info.value)
