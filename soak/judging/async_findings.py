"""Async findings of a stored run: its event-loop and thread-pool series judged (see
soak.analyzers.loop_health), and each finding's place in the code.

A finding's ``where`` is the first frame of its stack (the blocking call on the loop thread, or
the library line that waits on a pool); its ``call_site`` is the first application frame after
it when ``where`` is in a library (as for allocation findings), else the first frame in another
file: the application's call into the code that blocks or hides a pool. Its library is the first
distribution on the stack before the application (urllib3, not the ``socket.py`` it blocked in),
whose line is then given too (``library_at``). A pool's waiting stack may hold no library at all
(``await anyio.to_thread.run_sync(f)`` waits at the user's line): its library is then the one
whose thread handed the result back (anyio's worker thread), and ``library_at`` that thread's line.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from soak.analyzers import Analysis, Thresholds
from soak.analyzers.growth import SeriesFinding
from soak.analyzers.loop_health import ProbeData, blocked_loop, hidden_pools, window_of
from soak.inprocess.probes.loop_lag import LoopLagProbe
from soak.inprocess.probes.thread_pools import HiddenPoolProbe
from soak.judging.attribution import APPLICATION, STDLIB, Attributor
from soak.judging.sources import function_name
from soak.model.finding import Evidence, Frame
from soak.model.verdicts import CLEAN, INCONCLUSIVE
from soak.storage.queries import ProbeSeries

KIND = "async"
JUDGES = {LoopLagProbe.name: blocked_loop, HiddenPoolProbe.name: hidden_pools}


def analyze_async(stored: list[ProbeSeries], rows: list[dict[str, Any]], thresholds: Thresholds) -> Analysis | None:
    """The segment's async findings from its probes' series (``stored``, on ``rows``); None when
    no async probe reported in it."""
    times = np.array([row["t_s"] for row in rows], dtype=float)
    probes: dict[str, tuple[dict[tuple[str, str], np.ndarray], dict[str, Evidence]]] = {}
    for series in stored:
        if series.kind != KIND:
            continue
        values, evidence = probes.setdefault(series.probe, ({}, {}))
        values[(series.name, series.unit)] = series.values
        if series.evidence:
            evidence[series.name] = series.evidence
    if not probes:
        return None
    findings: list[SeriesFinding] = []
    for probe, (values, evidence) in probes.items():
        judge = JUDGES.get(probe)
        if judge is not None:
            findings += judge(times, ProbeData(probe, values, evidence), thresholds)
    tested = sum(1 for values, _ in probes.values() for _, unit in values if unit == "seconds")
    verdict = findings[0].verdict if findings else CLEAN if window_of(times, thresholds) is not None else INCONCLUSIVE
    return Analysis(verdict, findings, 0.0, len(times), tested)


def place(frames: list[Frame], attributor: Attributor, ran: Frame | None = None,
          answered: Frame | None = None) -> tuple[str | None, Frame | None, Frame | None]:
    """The library that blocked or waits on a pool, the call site (see the module's docstring),
    and the library's own innermost line when the first frame is not it. ``ran``: the function a
    thread ran for the waiting coroutine, the call site when no application frame waits on it (a
    framework's own request path, as a FastAPI ``def`` endpoint's). ``answered``: the pool
    thread's line that handed the result back, whose library is named when the waiting stack
    holds none."""
    if not frames:
        return None, None, None
    library, library_frame = blocking_library(frames, attributor)
    if library_frame is None and answered is not None and attributor.library(answered.file) not in (APPLICATION, STDLIB):
        library, library_frame = attributor.library(answered.file), answered
    if attributor.library(frames[0].file) != APPLICATION:
        caller = attributor.call_site(frames)
        if caller is None and ran is not None and attributor.library(ran.file) == APPLICATION:
            caller = ran
    else:
        caller = next((frame for frame in frames[1:] if frame.file != frames[0].file), None)
    return library, caller, library_frame if library_frame is not frames[0] else None


def blocking_library(frames: list[Frame], attributor: Attributor) -> tuple[str, Frame | None]:
    """The first distribution on the stack before the application's first frame, with its frame:
    requests or urllib3 for a call blocked in ``socket.py``. The stdlib (or the application) is
    named only when no distribution is on the stack between the block and the application."""
    for frame in frames:
        library = attributor.library(frame.file)
        if library == APPLICATION:
            break
        if library != STDLIB:
            return library, frame
    return attributor.library(frames[0].file), None


def named_frames(frames: list[Frame]) -> list[Frame]:
    """A finding's stack with each function named as the tracer's sites are, by its definition in
    the source (soak.judging.sources), where the measured process gave only the code's bare name:
    before 3.11 a code object has no ``co_qualname`` (3.10: ``fetch``, not ``SlowClient.fetch``).
    A qualified name, a lambda's or a comprehension's, or a file not readable here, is kept."""
    named = []
    for frame in frames:
        if "." not in frame.function and not frame.function.startswith("<"):
            source = function_name(frame.file, frame.line)
            if source != frame.function and source.rpartition(".")[2] == frame.function:
                frame = dataclasses.replace(frame, function=source)
        named.append(frame)
    return named
