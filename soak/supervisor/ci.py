"""``soak ci``: soak several targets in turn on a time budget, judge each one (and against a
baseline), and write what a CI system reads: JUnit XML and a Markdown step summary."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from soak.analyzers import Thresholds
from soak.durations import default_interval
from soak.errors import BadInput
from soak.inprocess.probes.tracer import DEFAULT_TRACER
from soak.inprocess.targets import parse_target
from soak.judging.compare import check_database, compare_with_baseline
from soak.model.report import Report
from soak.model.verdicts import FAILING_LEVELS, INCONCLUSIVE, fails
from soak.reports import load_report
from soak.reports.ci_result import ERROR, FAIL, PASS, CiResult, TargetResult
from soak.storage import check_before_writing, open_database, queries

if TYPE_CHECKING:
    from soak.supervisor.runner import RunOptions

__all__ = ["ERROR", "FAIL", "PASS", "CiOptions", "CiResult", "TargetResult", "default_interval", "run_ci"]


@dataclass
class CiOptions:
    """Everything ``soak ci`` takes, after the command line and ``[tool.leaksoak]`` are merged."""

    targets: list[str]
    duration_s: float
    """The budget of each target, not of all of them."""
    interval_s: float | None = None
    """Default: :func:`default_interval` of the duration."""
    db_path: str = "soak.db"
    junit_path: str | None = None
    summary_path: str | None = None
    """Appended to, as GitHub's ``$GITHUB_STEP_SUMMARY`` expects."""
    baseline_path: str | None = None
    fail_on: str = "suspect"
    tracer: str = DEFAULT_TRACER
    sample_interval: int | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    suppressions: str | None = None
    """A suppression rules file; None: those of the current directory (as for ``soak run``)."""
    fail_on_unused_suppressions: bool = False
    """Fail (exit 1) when a rule matched no finding in any target's run."""
    accept_baseline: bool = False
    """Accept every finding of each target's baseline run (in ``baseline_path``) as it is."""

    @property
    def interval(self) -> float:
        return self.interval_s if self.interval_s is not None else default_interval(self.duration_s)

    def run_options(self, target: str, accept: tuple[list[str], str] | None = None) -> RunOptions:
        """A target's run; ``accept``: the finding ids its baseline run had, and that run's name."""
        from soak.supervisor.runner import RunOptions

        options = RunOptions(target=target, duration_s=self.duration_s, interval_s=self.interval, db_path=self.db_path,
                             fail_on=self.fail_on, tracer=self.tracer, sample_interval=self.sample_interval,
                             mode="ci", thresholds=self.thresholds, suppressions=self.suppressions)
        if accept is not None:
            options.accept_findings, options.accept_source = accept
        return options

    def baseline_findings(self, target: str) -> tuple[list[str], str]:
        """The ids of every finding (accepted ones too) of the newest completed run of ``target`` in
        the baseline, and which run that is; none when the baseline has no run of it."""
        assert self.baseline_path is not None
        db = open_database(self.baseline_path, create=False)
        try:
            run = queries.latest_completed_runs(db).get(target)
            if run is None:
                return [], f"{self.baseline_path} (no run of this target)"
            return [row["finding_id"] for row in queries.findings(db, run["id"])], f"baseline run {run['id']} of {self.baseline_path}"
        finally:
            db.close()

    def check(self) -> None:
        """Everything that can be checked before the first soak starts; raises BadInput."""
        if not self.targets:
            raise BadInput("no targets: give TARGET arguments or set targets in [tool.leaksoak] of pyproject.toml")
        if self.fail_on not in FAILING_LEVELS:
            raise BadInput(f"--fail-on must be one of {', '.join(FAILING_LEVELS)}")
        if len(set(self.targets)) != len(self.targets):
            raise BadInput("a target is given twice")
        for target in self.targets:
            parse_target(target)
            self.run_options(target).check()
        for option, path in (("--junit", self.junit_path), ("--summary", self.summary_path)):
            if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
                raise BadInput(f"{option} {path!r}: its directory does not exist")
        if self.baseline_path is not None:
            check_database(self.baseline_path, "baseline")
        elif self.accept_baseline:
            raise BadInput("--accept-baseline accepts the findings of the --baseline run: give --baseline DB")
        self.run_options(self.targets[0], ([], "") if self.accept_baseline else None).load_rules()
        check_before_writing(self.db_path)


def run_ci(options: CiOptions, on_start: Callable[[int, int, str], None] | None = None,
           on_done: Callable[[int, int, TargetResult], None] | None = None) -> CiResult:
    """Soak each target for ``duration_s``, one after the other, then write the outputs asked for.

    ``on_start(index, total, target)`` and ``on_done(index, total, result)`` are called around
    each target (index from 1). Raises BadInput before anything runs for bad options."""
    from soak.supervisor import runner as supervisor  # the scheduler and the statistics load only when a run starts

    options.check()
    results: list[TargetResult] = []
    bad_input: str | None = None
    interrupted = False
    total = len(options.targets)
    for index, target in enumerate(options.targets, 1):
        if on_start is not None:
            on_start(index, total, target)
        # the baseline run is read before this target's run exists (the baseline may be this database)
        accept = options.baseline_findings(target) if options.accept_baseline else None
        try:
            run = supervisor.run(options.run_options(target, accept))
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
