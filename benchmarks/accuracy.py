"""Accuracy benchmark: every reference workload through the real `soak run`, scored against its ground truth.

    python benchmarks/accuracy.py [--duration 60s] [--interval 1s] [--scale 1.0] [--only NAME ...]
                                  [--tracer sampled|exact|off] [--sample-interval BYTES]
                                  [--soak-option=OPTION ...] [--jobs 1] [--db PATH] [--json PATH]
    python benchmarks/accuracy.py --replay --db PATH [--only NAME ...]

Each workload in ``soak.workloads.reference`` is soaked by the real CLI (``soak run ... --format
json``) into one SQLite file (a temporary one unless ``--db`` is given), one run after the other
(``--jobs`` runs several at once, which competes for CPU). ``--scale`` sets ``LEAKSOAK_LEAK_SCALE``
(0.1: every leak ten times slower); the late-onset leak starts at 40% of ``--duration`` unless
``LEAKSOAK_LATE_ONSET_S`` is set.

Printed, per workload: the expected verdict, leaksoak's verdict, whether the first finding is
*pinned* (its line is one of the workload's ``# LEAK`` lines; for a library leak, the library is
``EXPECTED_LIBRARY`` and the call site is a ``# LEAK`` line; a ``library`` finding of stdlib
allocations in an application leak counts when its call site is a ``# LEAK`` line), that finding's line, library, call
site and ``detected_at_s``, the statistical detection bound T* and the ratio of detection time to
it. Then the summary: false alarms on the clean workloads, recall (leaky workloads flagged, as
``leak`` or ``suspect``), attribution rate (leaky workloads pinned), median ``detected_at_s``, and
the median ratio.

T* is the time a trend test needs to see a linear leak of rate r in noise σ sampled every Δ
(AR(1) correlation φ) at one-sided level α = 0.01 with power 0.8:

    T* ≈ [(z₁₋α + z₁₋β) · σ · √(12Δ) · √((1+φ)/(1−φ)) / r]^(2/3)

measured from the stored series of the site of the run's first finding (for a missed leak, of the
ground-truth site that grew most, shown in brackets): r is the Theil–Sen slope of its bytes per
second, σ the standard deviation of the residuals around that fit, φ their lag-1 autocorrelation
clipped to [0, 0.95]. For a late-onset leak the fit starts at the onset, and the ratio is
(detected_at_s − onset) / T*. The scoring (ground truth, outcome, T*) is in
benchmarks/accuracy_scoring.py.

``--replay`` soaks nothing: it takes the runs an earlier benchmark kept in ``--db`` and judges
them again with this checkout's analyzer, refresh by refresh as ``soak run`` would have (see
``replay_one``), so a change to the statistics can be measured on hours of stored soak at once.

This is a measurement: it exits 0 whatever the accuracy, non-zero only if the harness breaks (a run
that produces no report).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from accuracy_scoring import Outcome, Truth, load_truth, measure_bound, open_for_reading

from soak.durations import parse_duration
from soak.inprocess.probes.tracer import DEFAULT_TRACER, TRACERS
from soak.storage import queries
from soak.workloads import reference

REPO = Path(__file__).resolve().parent.parent


def soak_command() -> list[str]:
    script = shutil.which("soak", path=os.path.dirname(sys.executable)) or shutil.which("soak")
    return [script] if script else [sys.executable, "-m", "soak"]


def run_one(truth: Truth, args: argparse.Namespace, db_path: str) -> Outcome:
    command = [
        *soak_command(), "run", f"{truth.path}:step",
        "--duration", args.duration, "--interval", args.interval,
        "--db", db_path, "--name", f"accuracy:{truth.name}", "--format", "json", "--quiet",
        "--tracer", args.tracer, *(["--sample-interval", args.sample_interval] if args.sample_interval else []),
        *args.soak_option,
    ]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, env=os.environ.copy(),
            timeout=parse_duration(args.duration) + 180,
        )
    except subprocess.TimeoutExpired:
        return Outcome(truth, -1, None, "timed out", time.monotonic() - started)
    wall_s = time.monotonic() - started
    report = None
    error = None
    if proc.returncode in (0, 1, 3):  # 3: the workload failed, and the report says how
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            error = f"unreadable report ({exc})"
    if report is None and error is None:
        error = f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    if proc.returncode == 3 and report is not None:
        error = f"run {report['run'].get('status')}: {report['run'].get('status_reason')}"
    return Outcome(truth, proc.returncode, report, error, wall_s)


# --- replay: today's analyzer on stored runs ------------------------------------------------------


def replay_one(truth: Truth, db_path: str) -> Outcome:
    """The newest stored run of ``truth``, analysed again by this checkout's analyzer.

    The supervisor's schedule is replayed: an analysis refresh every max(2 intervals, 1 s) on the
    snapshots stored by then, and at the end (the supervisor also skips a refresh until 20 times
    the previous one's cost has passed, which the replay does not); a finding's ``detected_at_s`` is the first refresh
    that reported it (as ``soak run`` records it). Collecting a long soak and judging it are
    separate, so a change to the statistics is measured on the same series without re-running
    hours of soak.
    """
    from soak.analyzers import Thresholds
    from soak.judging.analysis import analyze_run, placed_findings
    from soak.judging.attribution import Attributor

    started = time.monotonic()
    db = open_for_reading(db_path)
    try:
        found = db.execute("SELECT id, interval_s, status, name, target, duration_s, snapshots FROM runs"
                           " WHERE name = ? ORDER BY id DESC LIMIT 1", [f"accuracy:{truth.name}"]).fetchall()
        if not found:
            return Outcome(truth, -1, None, f"no stored run named accuracy:{truth.name}")
        run_id, interval_s, status, name, target, duration_s, count = found[0]
        # The run may have been made from another checkout: judge its frames against its own file.
        stored = Path(target.rsplit(":", 1)[0])
        if stored.is_file():
            truth = dataclasses.replace(truth, path=stored)
        rows = queries.snapshots(db, run_id)
        every = max(2 * (interval_s or 1.0), 1.0)
        attributor = Attributor([str(truth.path.parent)])
        first_seen: dict[str, float] = {}
        refreshes = [i for i, row in enumerate(rows) if i == len(rows) - 1 or
                     int(rows[i + 1]["t_s"] // every) > int(row["t_s"] // every)]
        findings: list[Any] = []
        verdict = "inconclusive"
        for i in refreshes:
            result, groups = analyze_run(db, run_id, Thresholds(), rows[:i + 1], attributor)
            findings = placed_findings(db, result, groups, attributor)
            verdict = result.verdict
            for finding in findings:
                first_seen.setdefault(finding.finding_id, float(rows[i]["t_s"]))
        report = {
            "run": {"id": run_id, "status": status, "name": name, "target": target, "duration_s": duration_s,
                    "snapshots": count},
            "verdict": verdict,
            "findings": [
                {"id": f.finding_id, "kind": f.kind, "verdict": f.verdict, "stack_id": f.stack_id,
                 "where": f.where.as_dict() if f.stack_id is not None and f.where else None,
                 "library": f.library, "call_site": f.call_site.as_dict() if f.call_site else None,
                 "growth_bytes_per_hour": f.growth_bytes_per_hour, "detected_at_s": first_seen[f.finding_id]}
                for f in findings
            ],
        }
        return Outcome(truth, 1 if verdict == "leak" else 0, report, None, time.monotonic() - started)
    finally:
        db.close()


# --- printing -----------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def _short(frame: dict[str, Any] | None) -> str:
    if not frame:
        return "-"
    return f"{Path(str(frame.get('file'))).name}:{frame.get('line')}"


def print_table(outcomes: list[Outcome]) -> None:
    header = (
        f"{'workload':<28} {'expect':<6} {'verdict':<12} {'pinned':<6} {'first finding':<28} {'library':<18} "
        f"{'call site':<26} {'KiB/s':>7} {'det_s':>6} {'T*_s':>6} {'ratio':>6}  r KiB/s  sigma KiB  phi"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        first = o.first
        pinned = ("yes" if o.pinned else "no") if o.truth.expected == "leak" else ""
        growth = first["growth_bytes_per_hour"] / 3600 / 1024 if first and first.get("growth_bytes_per_hour") else None
        bound = o.bound
        t_star = bound.get("t_star_s")
        t_star_text = _fmt(t_star) if bound.get("source") != "truth" else f"[{_fmt(t_star)}]"
        extra = ""
        if bound:
            extra = f"  {_fmt(bound['rate_bytes_per_s'] / 1024, 2):>7}  {_fmt(bound['sigma_bytes'] / 1024, 2):>9}  {bound['phi']:.2f}"
        print(
            f"{o.truth.name:<28} {o.truth.expected:<6} {o.verdict:<12} {pinned:<6} "
            f"{(_short(first.get('where')) if first else '-'):<28} {(first.get('library') or '-') if first else '-':<18} "
            f"{_short(first.get('call_site')) if first else '-':<26} {_fmt(growth):>7} {_fmt(o.detected_at_s):>6} "
            f"{t_star_text:>6} {_fmt(o.ratio, 2):>6}{extra}"
        )
        if o.error:
            print(f"    ! {o.error}")


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    clean = [o for o in outcomes if o.truth.expected == "clean"]
    leaky = [o for o in outcomes if o.truth.expected == "leak"]
    alarms = [o for o in clean if o.flagged]
    flagged = [o for o in leaky if o.flagged]
    pinned = [o for o in leaky if o.pinned]
    detections = [o.detected_at_s for o in flagged if o.detected_at_s is not None]
    ratios = [o.ratio for o in flagged if o.ratio is not None]
    return {
        "clean": len(clean),
        "false_alarms": len(alarms),
        "false_alarm_names": [f"{o.truth.name} ({o.verdict})" for o in alarms],
        "leaky": len(leaky),
        "flagged": len(flagged),
        "flagged_as_suspect": sum(o.verdict == "suspect" for o in flagged),
        "missed_names": [f"{o.truth.name} ({o.verdict})" for o in leaky if not o.flagged],
        "pinned": len(pinned),
        "misattributed_names": [o.truth.name for o in flagged if not o.pinned],
        "median_detected_at_s": statistics.median(detections) if detections else None,
        "median_ratio": statistics.median(ratios) if ratios else None,
        "ratios": len(ratios),
        "failed": [o.truth.name for o in outcomes if o.report is None or o.returncode == 3],
    }


def print_summary(summary: dict[str, Any], args: argparse.Namespace) -> None:
    def share(n: int, d: int) -> str:
        return f"{n}/{d} ({100 * n / d:.0f}%)" if d else "-"

    print()
    if args.replay:
        print(f"summary: runs stored in {args.db}, replayed with the analyzer at {_revision()}")
    else:
        print(f"summary: --duration {args.duration} --interval {args.interval} --scale {args.scale}")
    print(f"  false alarms on clean: {share(summary['false_alarms'], summary['clean'])}"
          + (f"  {', '.join(summary['false_alarm_names'])}" if summary["false_alarm_names"] else ""))
    print(f"  recall (leaky flagged leak/suspect): {share(summary['flagged'], summary['leaky'])}"
          f", of which suspect: {summary['flagged_as_suspect']}"
          + (f"  missed: {', '.join(summary['missed_names'])}" if summary["missed_names"] else ""))
    print(f"  attribution (first finding pinned): {share(summary['pinned'], summary['leaky'])}"
          + (f"  flagged but not pinned: {', '.join(summary['misattributed_names'])}" if summary["misattributed_names"] else ""))
    print(f"  median detected_at_s: {_fmt(summary['median_detected_at_s'])} s")
    print(f"  median detection / T*: {_fmt(summary['median_ratio'], 2)} (over {summary['ratios']} flagged leaks)")
    if summary["failed"]:
        print(f"  runs without a clean end: {', '.join(summary['failed'])}")


def _revision() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        ).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="60s")
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--scale", type=float, default=1.0, help="LEAKSOAK_LEAK_SCALE for every workload")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these workloads")
    parser.add_argument("--tracer", default=DEFAULT_TRACER, choices=TRACERS, help=f"soak run --tracer (default {DEFAULT_TRACER})")
    parser.add_argument("--sample-interval", help="soak run --sample-interval, e.g. 16KiB (default: the tracer's)")
    parser.add_argument("--soak-option", action="append", default=[], metavar="OPTION",
                        help="one more option for every soak run, repeatable: --soak-option=--native --soak-option=--type-findings")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--db", help="SQLite file to soak into (default: a temporary one, removed at the end)")
    parser.add_argument("--json", metavar="PATH", help="also write the outcomes and summary here")
    parser.add_argument("--replay", action="store_true",
                        help="soak nothing: analyse the runs already stored in --db again with this checkout's analyzer")
    args = parser.parse_args(argv)
    if args.replay and not args.db:
        parser.error("--replay needs --db, the file an earlier run of this benchmark kept")

    duration_s = parse_duration(args.duration)
    parse_duration(args.interval, option="interval")
    if not args.scale > 0:
        parser.error("--scale must be positive")
    os.environ["LEAKSOAK_LEAK_SCALE"] = repr(args.scale)
    os.environ.setdefault("LEAKSOAK_LATE_ONSET_S", repr(round(0.4 * duration_s, 3)))

    names = reference.names()
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"no reference workload {', '.join(unknown)}; there are: {', '.join(names)}")
        names = [name for name in names if name in args.only]
    truths = [load_truth(name) for name in names]

    tmpdir = None
    db_path = args.db
    if db_path is None:
        tmpdir = tempfile.mkdtemp(prefix="leaksoak-accuracy-")
        db_path = os.path.join(tmpdir, "accuracy.db")
    if args.replay:
        print(f"leaksoak accuracy benchmark at {_revision()}, replaying the runs stored in {db_path}: {len(truths)} workloads,"
              f" LEAKSOAK_LATE_ONSET_S={os.environ['LEAKSOAK_LATE_ONSET_S']}", flush=True)
    else:
        print(
            f"leaksoak accuracy benchmark at {_revision()}: {len(truths)} workloads, --duration {args.duration} "
            f"--interval {args.interval}, LEAKSOAK_LEAK_SCALE={os.environ['LEAKSOAK_LEAK_SCALE']}, "
            f"LEAKSOAK_LATE_ONSET_S={os.environ['LEAKSOAK_LATE_ONSET_S']}, --tracer {args.tracer}"
            + (f" --sample-interval {args.sample_interval}" if args.sample_interval else "")
            + "".join(f" {option}" for option in args.soak_option)
            + f", --jobs {args.jobs}, db {db_path}",
            flush=True,
        )
    outcomes: dict[str, Outcome] = {}
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            one = (lambda truth: replay_one(truth, db_path)) if args.replay else (lambda truth: run_one(truth, args, db_path))
            futures = {pool.submit(one, truth): truth for truth in truths}
            for future in concurrent.futures.as_completed(futures):
                outcome = future.result()
                try:
                    measure_bound(outcome, db_path)
                except Exception as exc:  # a measurement that cannot be made is shown, not fatal
                    outcome.error = (outcome.error + "; " if outcome.error else "") + f"bound: {type(exc).__name__}: {exc}"
                outcomes[outcome.truth.name] = outcome
                print(
                    f"  [{len(outcomes)}/{len(truths)}] {outcome.truth.name}: {outcome.verdict}"
                    f" (expected {outcome.truth.expected}, {outcome.wall_s:.0f} s)",
                    file=sys.stderr, flush=True,
                )
        ordered = [outcomes[truth.name] for truth in truths]
        print()
        print_table(ordered)
        summary = summarize(ordered)
        print_summary(summary, args)
        if args.json:
            Path(args.json).write_text(json.dumps({
                "args": vars(args),
                "revision": _revision(),
                "summary": summary,
                "outcomes": [
                    {"name": o.truth.name, "expected": o.truth.expected, "verdict": o.verdict, "pinned": o.pinned,
                     "first": o.first, "detected_at_s": o.detected_at_s, "ratio": o.ratio, "bound": o.bound,
                     "returncode": o.returncode, "error": o.error, "run_id": o.report["run"]["id"] if o.report else None}
                    for o in ordered
                ],
            }, indent=2))
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    broken = [o for o in outcomes.values() if o.report is None]
    return 2 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
