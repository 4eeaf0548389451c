"""How long the snapshots paused the measured process, in one line for every report format (the
summary itself is built by soak.judging.report_builder.pause_summary)."""

from __future__ import annotations

from soak.model.report import PauseSummary


def pause_note(summary: PauseSummary | None, probes: int = 4) -> str | None:
    """One line for every report format: ``snapshot pauses 1.98% of wall time (p50 23 ms, ...)``."""
    if summary is None:
        return None
    costliest = ", ".join(f"{p.probe} {_ms(p.median_ms)} x{p.runs}" for p in summary.probes[:probes])
    return (f"snapshot pauses {summary.share:.2%} of wall time (p50 {_ms(summary.p50_ms)}, p99 {_ms(summary.p99_ms)},"
            f" max {_ms(summary.max_ms)})" + (f"; by probe, median x snapshots: {costliest}" if costliest else ""))


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"
