"""examples/github-nightly.yml parses as YAML (PyYAML, a test-only dependency: a real parser
catches indentation mistakes a text check would not) and does what the manual says it does (docs/guide/ci.md)."""

from __future__ import annotations

import re
import shlex

import typer.main
import yaml
from conftest import REPO

from soak.cli import app

WORKFLOW = REPO / "examples" / "github-nightly.yml"


def _options_of(command: str) -> set[str]:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {name for param in click_command.params for name in param.opts}


def test_nightly_workflow_parses_and_wires_soak_ci_baseline_artifacts_and_junit() -> None:
    data = yaml.safe_load(WORKFLOW.read_text())
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    (schedule,) = triggers["schedule"]
    assert len(schedule["cron"].split()) == 5
    (job,) = data["jobs"].values()
    steps = job["steps"]
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    assert uses[:2] == ["actions/checkout", "actions/setup-python"]

    download = steps[uses.index("dawidd6/action-download-artifact")]
    assert download["continue-on-error"] is True
    upload = steps[uses.index("actions/upload-artifact")]
    assert upload["if"] == "always()" and upload["with"]["name"] == download["with"]["name"]
    assert "soak.db" in upload["with"]["path"] and "report" in upload["with"]["path"]
    junit = steps[uses.index("mikepenz/action-junit-report")]
    assert junit["if"] == "always()"

    scripts = "\n".join(step.get("run", "") for step in steps)
    (ci_line,) = [line for line in scripts.splitlines() if line.strip().startswith("soak ci")]
    words = shlex.split(ci_line, comments=True)
    assert set(w for w in words if w.startswith("--")) <= _options_of("ci")
    assert words[words.index("--junit") + 1] == junit["with"]["report_paths"]
    assert words[words.index("--summary") + 1] == "$GITHUB_STEP_SUMMARY"
    assert '--baseline baseline/soak.db' in scripts and download["with"]["path"] == "baseline"
    reports = [shlex.split(line, comments=True) for line in scripts.splitlines() if line.strip().startswith("soak report")]
    assert reports and all(r[r.index("--format") + 1] == "html" for r in reports)
    assert all(set(w for w in r if w.startswith("--")) <= _options_of("report") for r in reports)
    assert re.search(r"--output \"?report", scripts)
