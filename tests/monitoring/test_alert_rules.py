"""The alert rules (monitoring/prometheus/alerts.yml): promtool accepts them, their promtool unit
tests pass, and every rule has a test that fires it, one that keeps it silent, and a runbook
section (issue 14)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring.dashboard import ROOT, load, panels

PROMETHEUS = ROOT / "monitoring" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
SEVERITIES = {"warning", "critical"}
SECTION_PARTS = ("**Meaning:**", "**Confirm:**", "**Act:**", "**Escalate**")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *map(str, args)], capture_output=True, text=True, timeout=120)


def rules(alerts: Path) -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(alerts.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]


def rule_tests(test_files: list[Path]) -> list[dict[str, Any]]:
    """Every alert_rule_test entry of every promtool test file."""
    return [entry for f in test_files for case in yaml.safe_load(f.read_text(encoding="utf-8"))["tests"]
            for entry in case.get("alert_rule_test", [])]


def runbook_sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (\S+)\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def coverage_problems(alerts: Path, test_files: list[Path], runbook: str) -> list[str]:
    """What is missing for each rule: labels and annotations, a promtool test in which it fires at
    its severity, one in which it stays silent, and a runbook section with its four parts."""
    entries, sections, problems = rule_tests(test_files), runbook_sections(runbook), []
    for r in rules(alerts):
        name, severity = r["alert"], r.get("labels", {}).get("severity")
        notes = r.get("annotations", {})
        if severity not in SEVERITIES:
            problems.append(f"{name}: severity {severity!r} is not one of {sorted(SEVERITIES)}")
        if not notes.get("summary") or not notes.get("description"):
            problems.append(f"{name}: summary and description annotations are required")
        if notes.get("runbook_url") != f"docs/runbook.md#{name.lower()}":
            problems.append(f"{name}: runbook_url should be docs/runbook.md#{name.lower()}")
        mine = [e for e in entries if e["alertname"] == name]
        fired = {a.get("exp_labels", {}).get("severity") for e in mine for a in e.get("exp_alerts") or []}
        if severity not in fired:
            problems.append(f"{name} ({severity}): no promtool test fires it")
        if not any(not e.get("exp_alerts") for e in mine):
            problems.append(f"{name}: no promtool test keeps it silent on a healthy series")
        section = sections.get(name)
        if section is None:
            problems.append(f"{name}: no '## {name}' section in docs/runbook.md")
        elif missing := [p for p in SECTION_PARTS if p not in section]:
            problems.append(f"{name}: runbook section lacks {missing}")
    return problems


def test_promtool_check_rules_accepts_the_rules() -> None:
    r = promtool("check", "rules", ALERTS)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_promtool_unit_tests_pass_and_can_fail(tmp_path: Path) -> None:
    """Every test file passes against alerts.yml; the same tests fail once a threshold moves (the
    oldest-pending warning from 30 min to 5 h)."""
    files = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert len(files) >= 5
    r = promtool("test", "rules", *files)
    assert r.returncode == 0, r.stdout + r.stderr
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, copy)
    text = (copy / "alerts.yml").read_text(encoding="utf-8")
    (copy / "alerts.yml").write_text(text.replace("dvcgw_oldest_pending_age_seconds) > 1800",
                                                  "dvcgw_oldest_pending_age_seconds) > 18000"), encoding="utf-8")
    r = promtool("test", "rules", copy / "tests" / "sync.yml")
    assert r.returncode != 0 and "DvcgwOldestPendingTooOld" in r.stdout + r.stderr


def test_every_test_file_tests_this_rules_file() -> None:
    for f in sorted((PROMETHEUS / "tests").glob("*.yml")):
        assert yaml.safe_load(f.read_text(encoding="utf-8"))["rule_files"] == ["../alerts.yml"], f.name


def test_the_issue_alerts_are_there() -> None:
    """The ten conditions issue 14 lists, each as at least one rule on the contract's families."""
    exprs = {r["alert"]: r["expr"] for r in rules(ALERTS)}
    wanted = {
        "DvcgwBacklogGrowing": "dvcgw_queue_dossiers", "DvcgwOldestPendingTooOld": "dvcgw_oldest_pending_age_seconds",
        "DvcgwDeadLetters": "dvcgw_dead_letters", "DvcgwPortalCircuitOpen": 'dvcgw_circuit_state{counterpart="portal"}',
        "DvcgwPortalAuthFailing": "dvcgw_portal_delivery_paused", "DvcgwThrottledForLong": "dvcgw_throttled_",
        "DvcgwTsaUnavailable": "dvcgw_tsa_available", "DvcgwSigningCertExpiring": "dvcgw_signing_cert_expiry_seconds",
        "DvcgwDossierSyncBelowTarget": "dvcgw_kpi766_target_ratio", "DvcgwInstanceDown": 'up{job="dvc-gateway"} == 0',
    }
    for name, family in wanted.items():
        assert family in exprs.get(name, ""), name


def test_every_rule_fires_in_a_test_stays_silent_in_another_and_has_a_runbook_section() -> None:
    files = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert coverage_problems(ALERTS, files, RUNBOOK.read_text(encoding="utf-8")) == []


def test_a_new_rule_without_tests_or_runbook_is_reported(tmp_path: Path) -> None:
    """The check above can fail: a rule added to alerts.yml alone is named three times."""
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    doc["groups"][0]["rules"].append({
        "alert": "DvcgwSomethingNew", "expr": "vector(1)", "labels": {"severity": "warning"},
        "annotations": {"summary": "s", "description": "d", "runbook_url": "docs/runbook.md#dvcgwsomethingnew"}})
    alerts = tmp_path / "alerts.yml"
    alerts.write_text(yaml.safe_dump(doc), encoding="utf-8")
    problems = coverage_problems(alerts, sorted((PROMETHEUS / "tests").glob("*.yml")),
                                 RUNBOOK.read_text(encoding="utf-8"))
    assert problems == ["DvcgwSomethingNew (warning): no promtool test fires it",
                        "DvcgwSomethingNew: no promtool test keeps it silent on a healthy series",
                        "DvcgwSomethingNew: no '## DvcgwSomethingNew' section in docs/runbook.md"]


def test_runbook_names_only_panels_the_dashboard_has() -> None:
    """Every *Row → Panel* in the runbook is a panel of that row in dvc-gateway.json."""
    d = load()
    row, where = "", {}
    for p in d["panels"]:
        if p["type"] == "row":
            row = p["title"]
        else:
            where[p["title"]] = row
    refs = [r for r in re.findall(r"\*([^*\n]+?) →\s+([^*]+?)\*", RUNBOOK.read_text(encoding="utf-8"))
            if r != ("Row", "Panel")]  # the notation, explained at the top
    assert len(refs) >= 20 and len(panels(d)) == len(where)
    for ref_row, ref_panel in refs:
        title = " ".join(ref_panel.split())
        assert title in where, f"runbook names a panel the dashboard lacks: {title}"
        assert where[title].startswith(ref_row), f"{title} is in row {where[title]!r}, not {ref_row!r}"
