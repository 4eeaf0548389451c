"""What a soak refuses before it starts: its options checked, against this machine too (the
tracer, ``--native``, the target), and its suppression rules read; one line each (BadInput)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from soak.errors import BadInput
from soak.inprocess.probes.budget import check_pause_budget
from soak.inprocess.probes.native import native_unavailable
from soak.inprocess.probes.tracer import BadTracer, check_tracer
from soak.inprocess.targets import parse_target
from soak.model.options import DEFAULT_DURATION_S, RunOptions, SoakOptions, WorkerOptions
from soak.model.verdicts import FAIL_ON

if TYPE_CHECKING:
    from soak.judging.suppressions import Rule


def check(options: SoakOptions) -> None:
    """Raise BadInput for the first thing to fix, in the order a user fixes them: what to soak
    (the target, or the run to resume), then how."""
    if isinstance(options, RunOptions):
        if (options.target is None) == (options.resume is None):
            raise BadInput("give either a TARGET or --resume RUN")
        if options.target is not None:
            parse_target(options.target)
    duration = DEFAULT_DURATION_S if options.duration_s is None else options.duration_s
    if options.interval <= 0 or duration <= 0:
        raise BadInput("--interval and --duration must be longer than zero")
    resuming = isinstance(options, RunOptions) and options.resume is not None
    if options.interval > duration and not resuming:  # a resumed run's interval is its own
        raise BadInput("--interval is longer than --duration; no snapshot would be taken twice")
    if isinstance(options, WorkerOptions):
        _check_worker(options)
    if options.fail_on not in FAIL_ON:
        raise BadInput(f"--fail-on must be one of {', '.join(FAIL_ON)}")
    if options.mode not in options.MODES:
        raise BadInput(f"mode must be one of {', '.join(options.MODES)}")
    if options.metrics_port is not None and not 0 < options.metrics_port < 65536:
        raise BadInput("--metrics-port must be between 1 and 65535")
    if options.metrics_top < 0:
        raise BadInput("--metrics-top must be 0 or more")
    if options.analysis_recycle_every < 1:
        raise BadInput("analysis_recycle_every must be at least 1")
    if options.thin_every < 1 or options.keep_full_s <= 0:
        raise BadInput("--thin-every must be at least 1 and --keep-full longer than zero")


def _check_worker(options: WorkerOptions) -> None:
    try:
        check_tracer(options.tracer, options.frames, options.sample_interval)
    except BadTracer as exc:
        raise BadInput(str(exc)) from exc
    if options.native and (reason := native_unavailable()) is not None:
        raise BadInput(f"--native cannot run here: {reason}")
    if options.concurrency < 1:
        raise BadInput("--concurrency must be at least 1")
    check_pause_budget(options.pause_budget)
    if options.loop_block_s <= 0:
        raise BadInput("--loop-block must be longer than zero")


def load_rules(options: SoakOptions) -> list[Rule]:
    """The suppression rules of the run, read and checked; raises BadInput for a malformed file."""
    from soak.judging.suppressions import BASELINE_RULE, baseline_rule
    from soak.judging.suppressions import load_rules as read_rules

    rules = read_rules(options.suppressions)
    if isinstance(options, RunOptions) and options.accept_findings is not None:
        clash = next((rule for rule in rules if rule.id == BASELINE_RULE), None)
        if clash is not None:
            raise BadInput(f"{clash.where}: suppression id {BASELINE_RULE!r} is the one --accept-baseline uses; rename it")
        rules.append(baseline_rule(options.accept_findings, options.accept_source))
    return rules
