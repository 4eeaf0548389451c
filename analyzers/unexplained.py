"""Process memory the traced heap does not explain: the one rule behind ``process`` findings of
kind ``unexplained``, for memory that C code allocates where no Python tracer looks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from soak.analyzers.growth import Analysis, Series, analyze
from soak.analyzers.trend import fit_trend
from soak.model.finding import ProcessKey
from soak.model.thresholds import Thresholds
from soak.model.verdicts import CLEAN, INCONCLUSIVE

UNEXPLAINED_SHARE = 0.5
"""Growth is unexplained when the traced heap's own growth is less than this share of the
process's: a Python leak grows RSS by about what it traces (with allocator overhead on top);
memory from C code grows RSS alone."""
MIN_GROWTH_BYTES = 1024 * 1024
"""RSS moves in pages and the C allocator takes and returns memory in chunks of 128 KiB and more:
growth of less than this across the analysed window is the allocator settling, not a leak."""


def unexplained_growth(times: np.ndarray, process_bytes: np.ndarray, explained_bytes: np.ndarray,
                       thresholds: Thresholds, native_tracked: bool) -> Analysis:
    """Judge ``process_bytes − explained_bytes`` (RSS less the traced heap, the tracer's own
    memory and, with ``--native``, the native sites) like any bytes series; a finding stands only
    where the explained part grew by less than :data:`UNEXPLAINED_SHARE` of the process's growth
    over the same window. Its key is ``ProcessKey("unexplained")``."""
    residual = np.asarray(process_bytes, dtype=float) - np.asarray(explained_bytes, dtype=float)
    floor = replace(thresholds, min_growth_bytes=max(thresholds.min_growth_bytes, MIN_GROWTH_BYTES))
    result = analyze(times, [Series(ProcessKey("unexplained"), residual)], floor,
                     heap_bytes=float(np.median(process_bytes)) if len(process_bytes) else 0.0)
    kept = []
    for finding in result.findings:
        start, end = finding.evidence["window_s"]
        window = (times >= start) & (times <= end)
        if window.sum() < 3:
            continue
        process = fit_trend(times[window], np.asarray(process_bytes, dtype=float)[window]).slope
        explained = fit_trend(times[window], np.asarray(explained_bytes, dtype=float)[window]).slope
        if process <= 0 or explained >= UNEXPLAINED_SHARE * process:
            continue
        kept.append(replace(finding, evidence={
            **finding.evidence, "process_slope_bytes_per_s": process, "explained_slope_bytes_per_s": explained,
            "native_tracked": native_tracked}))
    verdict = result.verdict if kept or result.verdict in (CLEAN, INCONCLUSIVE) else CLEAN
    return replace(result, verdict=verdict, findings=kept)
