"""``soak ci TARGET...``: soak each target on a time budget and report as CI systems read it."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import typer

from soak import api
from soak.cli.commands.options import DB, SAMPLE_INTERVAL, SUPPRESSIONS, TRACER, parse_sample_interval
from soak.durations import format_duration, parse_duration
from soak.errors import BadInput
from soak.judging.pyproject import read_config
from soak.judging.suppressions import BASELINE_RULE
from soak.reports.brief import brief
from soak.reports.text import render_text

if TYPE_CHECKING:
    from soak.supervisor.ci import TargetResult


def ci_command(
    targets: list[str] = typer.Argument(
        None, help="path/to/file.py:func or package.module:func; default: targets in \\[tool.leaksoak] of ./pyproject.toml."),
    duration: str | None = typer.Option(
        None, "--duration", "-d", help="Budget of EACH target (not of all): 90s, 10m, 1h. Required here or in \\[tool.leaksoak]."),
    interval: str | None = typer.Option(
        None, "--interval", "-i", help="Time between heap snapshots (default: duration/60, between 0.25s and 30s)."),
    db: str = DB,
    junit: str = typer.Option(None, "--junit", help="Write JUnit XML here: one test case per target."),
    summary: str = typer.Option(None, "--summary", help="Append a Markdown summary here, e.g. \"$GITHUB_STEP_SUMMARY\"."),
    baseline: str = typer.Option(None, "--baseline", help="A database from an earlier run (e.g. last night's): a new leak, "
                                 "or a finding growing significantly faster, fails its target."),
    fail_on: str = typer.Option(None, "--fail-on", help="Fail a target on: leak, or suspect (a leak or a suspect; the default)."),
    tracer: str = typer.Option(None, "--tracer", help=TRACER.help),
    sample_interval: str = SAMPLE_INTERVAL,
    suppressions: str = SUPPRESSIONS,
    fail_on_unused_suppressions: bool = typer.Option(
        False, "--fail-on-unused-suppressions",
        help="Fail (exit 1) when a suppression rule matched no finding in any target's run: remove rules for fixed leaks."),
    accept_baseline: bool = typer.Option(
        False, "--accept-baseline",
        help="Accept every finding that the target's --baseline run had (listed as accepted, not counted); only new ones fail."),
) -> None:
    """Soak each TARGET in turn for --duration, in one database, and fail the ones that leak.

    Writes JUnit XML (--junit) and a Markdown summary (--summary); under GitHub Actions
    (GITHUB_ACTIONS=true) prints annotations on the leaking lines. Exit codes: 0 every target
    passed, 1 a target leaks (or regressed against --baseline), 2 bad input, 3 a run failed.
    """
    config = read_config()
    given_targets = list(targets or []) or list(config.get("targets") or [])
    duration = duration or config.get("duration")
    if not given_targets:
        raise BadInput("no targets: give TARGET arguments or set targets in [tool.leaksoak] of pyproject.toml")
    if duration is None:
        raise BadInput("give --duration (the budget of each target) or set duration in [tool.leaksoak] of pyproject.toml")
    interval = _first_given(interval, config.get("interval"), None)
    options = api.CiOptions(
        targets=given_targets,
        duration_s=parse_duration(duration),
        interval_s=parse_duration(interval, option="interval") if interval is not None else None,
        db_path=db,
        junit_path=junit,
        summary_path=summary,
        baseline_path=baseline,
        fail_on=_first_given(fail_on, config.get("fail-on"), "suspect"),
        tracer=_first_given(tracer, config.get("tracer"), TRACER.default),
        sample_interval=parse_sample_interval(_first_given(sample_interval, config.get("sample-interval"), None)),
        suppressions=suppressions,
        fail_on_unused_suppressions=fail_on_unused_suppressions,
        accept_baseline=accept_baseline,
    )
    result = api.ci(options, on_start=lambda i, n, t: _start(options, i, n, t), on_done=_done)
    for target in result.targets:
        if target.report is not None:
            sys.stdout.write(render_text(target.report) + "\n")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        from soak.reports.annotations import render_annotations

        for line in render_annotations(result):
            print(line)
    for target in result.targets:
        for warning in target.report.suppression_warnings if target.report is not None else []:
            print(f"soak: warning: {target.target}: {warning}", file=sys.stderr)
    if result.unused_suppressions:
        print(f"soak: {'error' if result.unused_fail else 'warning'}: suppression rule(s) matched no finding in any target's run: "
              f"{', '.join(result.unused_suppressions)}" + ("" if result.unused_fail else " (--fail-on-unused-suppressions fails on this)"),
              file=sys.stderr)
    failed = [t for t in result.targets if t.outcome != "pass"]
    print(f"soak ci: {len(result.targets) - len(failed)} of {len(options.targets)} target(s) passed"
          + (f"; failing: {', '.join(t.target for t in failed)}" if failed else "")
          + ("; unused suppression rules fail the job" if result.unused_fail else ""), file=sys.stderr)
    if result.bad_input:
        raise BadInput(result.bad_input)
    raise typer.Exit(result.exit_code)


def _start(options: api.CiOptions, index: int, total: int, target: str) -> None:
    print(f"soak ci [{index}/{total}] {target}: soaking for {format_duration(options.duration_s or 0)}, "
          f"a snapshot every {format_duration(options.interval)}", file=sys.stderr, flush=True)


def _done(index: int, total: int, result: TargetResult) -> None:
    if result.report is None:
        what = f"ERROR: {result.reason}"
    elif result.status != "completed":
        what = f"ERROR: run {result.run_id} {result.status}: {result.reason}"
    else:
        top = f" - {brief(result.report.findings[0])}" if result.report.findings else ""
        what = f"{result.outcome.upper()}: {result.verdict}{top} (run {result.run_id}, {format_duration(result.report.run.duration_s)})"
    print(f"soak ci [{index}/{total}] {result.target}: {what}", file=sys.stderr, flush=True)
    if result.report is not None and result.report.accepted:
        baseline = [a for a in result.report.accepted if a.rule == BASELINE_RULE]
        if baseline:
            print(f"soak ci [{index}/{total}] {result.target}: --accept-baseline accepted {len(baseline)} finding(s) "
                  f"of {baseline[0].source}:", file=sys.stderr)
            for accepted in baseline:
                print(f"    {accepted.finding.finding_id} {brief(accepted.finding)}", file=sys.stderr)
        others = len(result.report.accepted) - len(baseline)
        if others:
            print(f"soak ci [{index}/{total}] {result.target}: {others} finding(s) accepted by suppression rules",
                  file=sys.stderr, flush=True)


def _first_given(option: Any, configured: Any, default: Any) -> Any:
    """The option if given on the command line (even empty: ``--fail-on ''`` is refused, not
    taken as the default), else the configuration's value, else the default."""
    for value in (option, configured):
        if value is not None:
            return value
    return default
