"""The results of benchmarks/overhead.py: each configuration's calls/s per round, summarized as
slowdowns against the untraced run of the same round, and printed as one table per step.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Series:
    config: str
    step: str
    calls_per_s: dict[int, float] = field(default_factory=dict)  # round -> calls/s
    runs: list[dict[str, Any]] = field(default_factory=list)
    failed: str | None = None


def ratio_stats(series: Series, baseline: Series) -> list[float]:
    return [baseline.calls_per_s[r] / cps for r, cps in series.calls_per_s.items()
            if r in baseline.calls_per_s and cps > 0]


def summarize(series: Series, baseline: Series) -> dict[str, Any]:
    ratios = ratio_stats(series, baseline)
    summary: dict[str, Any] = {
        "config": series.config, "step": series.step, "failed": series.failed,
        "rounds": len(series.calls_per_s),
        "calls_per_s_median": statistics.median(series.calls_per_s.values()) if series.calls_per_s else None,
        "slowdown_median": statistics.median(ratios) if ratios else None,
        "slowdown_min": min(ratios) if ratios else None,
        "slowdown_max": max(ratios) if ratios else None,
        "calls_per_s": [series.calls_per_s[r] for r in sorted(series.calls_per_s)],
        "slowdown": ratios,
        "runs": series.runs,
    }
    for key in ("capture_written_bytes_per_s", "capture_bytes_per_s"):
        values = [run[key] for run in series.runs if key in run]
        if values:
            summary[f"{key}_median"] = statistics.median(values)
    collect = [run["collect_ms"] for run in series.runs if run.get("collect_ms") is not None]
    if collect:
        summary["collect_ms_median"] = statistics.median(collect)
    return summary


def format_rate(bytes_per_s: float) -> str:
    return f"{bytes_per_s / 1e6:,.1f} MB/s" if bytes_per_s >= 1e5 else f"{bytes_per_s / 1e3:,.1f} kB/s"


def extra(summary: dict[str, Any]) -> str:
    if summary["config"] == "none" and len(summary["calls_per_s"]) > 1:
        median = summary["calls_per_s_median"]
        return f"rounds {min(summary['calls_per_s']) / median:.2f}-{max(summary['calls_per_s']) / median:.2f}x median"
    if "capture_bytes_per_s_median" in summary:
        return (f"capture {format_rate(summary['capture_written_bytes_per_s_median'])} written, "
                f"{format_rate(summary['capture_bytes_per_s_median'])} after lz4 at exit")
    if "collect_ms_median" in summary:
        return f"collect() {summary['collect_ms_median']:.1f} ms, once a second"
    return ""


def print_table(step: str, summaries: list[dict[str, Any]], unavailable: dict[str, str]) -> None:
    print(f"\n{step}", flush=True)
    print(f"  {'config':18} {'calls/s':>10} {'slowdown':>9} {'min-max':>13}")
    for s in summaries:
        if s["failed"] and not s["calls_per_s"]:
            print(f"  {s['config']:18} failed ({s['failed']})")
            continue
        cps = f"{s['calls_per_s_median']:,.0f}" if s["calls_per_s_median"] is not None else "-"
        if s["config"] == "none":
            ratio, spread = "1", "(baseline)"
        elif s["slowdown_median"] is not None:
            ratio = f"{s['slowdown_median']:.2f}x"
            spread = f"{s['slowdown_min']:.2f}-{s['slowdown_max']:.2f}"
        else:
            ratio, spread = "-", "-"
        note = extra(s)
        if s["failed"]:
            note = f"{note}; failed later: {s['failed']}".lstrip("; ")
        print(f"  {s['config']:18} {cps:>10} {ratio:>9} {spread:>13}  {note}".rstrip())
    for config, reason in unavailable.items():
        print(f"  {config}: unavailable ({reason})")
