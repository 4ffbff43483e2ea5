"""`make test`'s dependency audit (issue 17; docs/security.md, "Dependencies"): pip-audit against
the set the virtual environment holds (what `make` installed from pyproject.toml's ranges; the
project itself, an editable install, is left out).

Exit 0: audited, no known vulnerability (or only ones docs/security-ignores.txt accepts, each
with a reason and a date after which it is looked at again). Exit 1: a known vulnerability, or a
pip-audit failure that is not the service's. Where the vulnerability service cannot be reached
or knows none of the packages (this workplace reaches PyPI as a package index only, not its JSON
API nor OSV), it says so plainly, "NOT AUDITED", and exits 0 unless DVCGW_AUDIT_STRICT=1: the
step never passes silently, and never fails a build for a network it does not have.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORES = ROOT / "docs" / "security-ignores.txt"
PIP_AUDIT = Path(sys.executable).with_name("pip-audit")


def ignored(today: dt.date) -> dict[str, str]:
    """``ID  until-YYYY-MM-DD  reason`` lines; an expired one no longer counts."""
    out: dict[str, str] = {}
    for line in IGNORES.read_text(encoding="utf-8").splitlines() if IGNORES.exists() else []:
        parts = line.split(None, 2)
        if len(parts) == 3 and not line.startswith("#") and dt.date.fromisoformat(parts[1]) >= today:
            out[parts[0]] = parts[2]
    return out


def main() -> int:
    cmd = [str(PIP_AUDIT), "--local", "--skip-editable", "--progress-spinner", "off", "--format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    try:
        report = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        report = {}
    deps = report.get("dependencies", [])
    if not deps:
        unreachable = "ConnectionError" in proc.stderr or "NameResolution" in proc.stderr
        print(f"pip-audit: {'NOT AUDITED: the vulnerability service is unreachable' if unreachable else 'failed'}"
              f" (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:] or ''}")
        return 1 if not unreachable or os.environ.get("DVCGW_AUDIT_STRICT") == "1" else 0
    audited = [d for d in deps if "skip_reason" not in d]
    if not audited:
        print(f"pip-audit: NOT AUDITED: the vulnerability service knew none of the {len(deps)} installed "
              "packages (no answer from its API here); run `make test` where it is reachable, or set "
              "DVCGW_AUDIT_STRICT=1 to make this an error")
        return 1 if os.environ.get("DVCGW_AUDIT_STRICT") == "1" else 0
    accepted = ignored(dt.date.today())
    found = [(d["name"], d["version"], v["id"], v.get("fix_versions", []))
             for d in audited for v in d.get("vulns", [])]
    open_ = [f for f in found if f[2] not in accepted]
    for name, version, vid, fixes in found:
        state = f"accepted: {accepted[vid]}" if vid in accepted else "OPEN"
        print(f"pip-audit: {name} {version} {vid} (fixed in {', '.join(fixes) or 'no release'}) {state}")
    print(f"pip-audit: {len(audited)} of {len(deps)} packages audited, {len(open_)} open finding(s); "
          "how a finding is handled: docs/security.md, Dependencies")
    return 1 if open_ else 0


if __name__ == "__main__":
    sys.exit(main())
