"""checkov over terraform/ finds no failed check, and every skip is inline with its reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def run_checkov(checkov: str, directory: Path) -> list[dict[str, Any]]:
    """checkov's JSON report for ``directory`` (one entry per framework)."""
    proc = subprocess.run(
        [checkov, "-d", str(directory), "--framework", "terraform", "--output", "json", "--quiet", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not proc.stdout.strip():
        raise AssertionError(f"checkov printed nothing (exit {proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    return report if isinstance(report, list) else [report]


def failed_checks(reports: list[dict[str, Any]]) -> list[str]:
    out = []
    for report in reports:
        for check in report.get("results", {}).get("failed_checks", []):
            out.append(f"{check['check_id']} {check['check_name']}: {check['file_path']} {check['resource']}")
    return out


def test_checkov_passes(checkov: str, terraform_root: Path) -> None:
    reports = run_checkov(checkov, terraform_root)
    failed = failed_checks(reports)
    assert not failed, f"{len(failed)} failed checkov checks:\n" + "\n".join(failed)
    summary = reports[0].get("summary", {})
    assert summary.get("passed", 0) > 100, f"checkov checked too little: {summary}"
    assert summary.get("parsing_errors", 0) == 0, f"checkov could not parse files: {summary}"
    for report in reports:
        for check in report.get("results", {}).get("skipped_checks", []):
            reason = (check.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason.strip()) >= 10, f"{check['check_id']} on {check['resource']} skipped without a reason"
