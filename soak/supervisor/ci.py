"""``soak ci``: soak several targets in turn on a time budget, judge each one (and against a
baseline), and write what a CI system reads: JUnit XML and a Markdown step summary."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import fields

from soak.errors import BadInput
from soak.inprocess.targets import parse_target
from soak.judging.compare import check_database, compare_with_baseline
from soak.model.options import CiOptions, RunOptions, WorkerOptions
from soak.model.report import Report
from soak.model.verdicts import FAILING_LEVELS, INCONCLUSIVE, fails
from soak.reports import load_report
from soak.reports.ci_result import ERROR, FAIL, PASS, CiResult, TargetResult
from soak.storage import check_before_writing, open_database, queries
from soak.supervisor.checks import check, load_rules

__all__ = ["ERROR", "FAIL", "PASS", "CiOptions", "CiResult", "TargetResult", "run_ci"]


def run_options(options: CiOptions, target: str, accept: tuple[list[str], str] | None = None) -> RunOptions:
    """A target's run: the options of ``soak ci`` that a worker and a run take, in mode ``ci``;
    ``accept``: the finding ids its baseline run had, and that run's name."""
    shared = {option.name: getattr(options, option.name) for option in fields(WorkerOptions)}
    run = RunOptions(target, **shared | {"mode": "ci"})
    if accept is not None:
        run.accept_findings, run.accept_source = accept
    return run


def baseline_findings(options: CiOptions, target: str) -> tuple[list[str], str]:
    """The ids of every finding (accepted ones too) of the newest completed run of ``target`` in
    the baseline, and which run that is; none when the baseline has no run of it."""
    assert options.baseline_path is not None
    db = open_database(options.baseline_path, create=False)
    try:
        run = queries.latest_completed_runs(db).get(target)
        if run is None:
            return [], f"{options.baseline_path} (no run of this target)"
        return [row["finding_id"] for row in queries.findings(db, run["id"])], f"baseline run {run['id']} of {options.baseline_path}"
    finally:
        db.close()


def check_ci(options: CiOptions) -> None:
    """Everything that can be checked before the first soak starts; raises BadInput."""
    if not options.targets:
        raise BadInput("no targets: give TARGET arguments or set targets in [tool.leaksoak] of pyproject.toml")
    if options.duration_s is None:
        raise BadInput("give --duration (the budget of each target) or set duration in [tool.leaksoak] of pyproject.toml")
    if options.fail_on not in FAILING_LEVELS:
        raise BadInput(f"--fail-on must be one of {', '.join(FAILING_LEVELS)}")
    if len(set(options.targets)) != len(options.targets):
        raise BadInput("a target is given twice")
    for target in options.targets:
        parse_target(target)
        check(run_options(options, target))
    for option, path in (("--junit", options.junit_path), ("--summary", options.summary_path)):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise BadInput(f"{option} {path!r}: its directory does not exist")
    if options.baseline_path is not None:
        check_database(options.baseline_path, "baseline")
    elif options.accept_baseline:
        raise BadInput("--accept-baseline accepts the findings of the --baseline run: give --baseline DB")
    load_rules(run_options(options, options.targets[0], ([], "") if options.accept_baseline else None))
    check_before_writing(options.db_path)


def run_ci(options: CiOptions, on_start: Callable[[int, int, str], None] | None = None,
           on_done: Callable[[int, int, TargetResult], None] | None = None) -> CiResult:
    """Soak each target for ``duration_s``, one after the other, then write the outputs asked for.

    ``on_start(index, total, target)`` and ``on_done(index, total, result)`` are called around
    each target (index from 1). Raises BadInput before anything runs for bad options."""
    from soak.supervisor import runner as supervisor  # the scheduler and the statistics load only when a run starts

    check_ci(options)
    results: list[TargetResult] = []
    bad_input: str | None = None
    interrupted = False
    total = len(options.targets)
    for index, target in enumerate(options.targets, 1):
        if on_start is not None:
            on_start(index, total, target)
        # the baseline run is read before this target's run exists (the baseline may be this database)
        accept = baseline_findings(options, target) if options.accept_baseline else None
        try:
            run = supervisor.run(run_options(options, target, accept))
        except BadInput as exc:  # the worker could not load it: nothing was written for it
            bad_input = bad_input or f"target {target!r}: {exc}"
            result = TargetResult(target, ERROR, None, "bad_input", str(exc), INCONCLUSIVE)
        else:
            result = _judge(options, target, run.run_id, run.status, run.reason, load_report(options.db_path, str(run.run_id)))
        results.append(result)
        if on_done is not None:
            on_done(index, total, result)
        if result.status == "interrupted":
            interrupted = True
            break
    if options.baseline_path is not None:
        results = _with_baseline(options, results)
    outcome = CiResult(results, options.fail_on, bad_input, interrupted, _unused_everywhere(results),
                       options.fail_on_unused_suppressions)
    _write_outputs(options, outcome)
    return outcome


def _judge(options: CiOptions, target: str, run_id: int, status: str, reason: str | None, report: Report) -> TargetResult:
    if status != "completed":
        return TargetResult(target, ERROR, run_id, status, reason, report.verdict, report)
    return TargetResult(target, FAIL if fails(report.verdict, options.fail_on) else PASS, run_id, status, reason, report.verdict, report)


def _unused_everywhere(results: list[TargetResult]) -> list[str]:
    """The rules that matched no finding in any target's run (a rule may be meant for one target)."""
    reports = [r.report for r in results if r.report is not None]
    if not reports:
        return []
    unused = set(reports[0].suppressions.unused)
    for report in reports[1:]:
        unused &= set(report.suppressions.unused)
    return [rule for rule in reports[0].suppressions.unused if rule in unused]


def _with_baseline(options: CiOptions, results: list[TargetResult]) -> list[TargetResult]:
    assert options.baseline_path is not None
    compared = [r for r in results if r.run_id is not None and r.status == "completed"]
    comparisons = compare_with_baseline(options.baseline_path, options.db_path, [r.run_id for r in compared if r.run_id])
    judged = []
    for result in results:
        comparison = comparisons.get(result.run_id) if result.run_id is not None else None
        outcome = FAIL if comparison is not None and comparison.status == "regression" and result.outcome == PASS else result.outcome
        judged.append(TargetResult(result.target, outcome, result.run_id, result.status, result.reason, result.verdict,
                                   result.report, comparison))
    return judged


def _write_outputs(options: CiOptions, result: CiResult) -> None:
    from soak.reports.output import write_output

    if options.junit_path:
        from soak.reports.junit import render_junit

        write_output(render_junit(result), options.junit_path)
    if options.summary_path:
        from soak.reports.ci_summary import render_summary

        text = render_summary(result)
        try:
            with open(options.summary_path, "a", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise BadInput(f"cannot write {options.summary_path!r}: {exc.strerror}") from exc
