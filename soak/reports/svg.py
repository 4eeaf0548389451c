"""Line charts as inline SVG, drawn in Python: no script and no network needed to see them."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from soak.durations import format_duration
from soak.reports.series import Fit, Line

WIDTH, HEIGHT = 960, 250
LEFT, RIGHT, TOP, BOTTOM = 78, 16, 26, 30

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_TIME_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
               43200, 86400, 172800, 604800)


@dataclass(frozen=True)
class Styled:
    """A line and how it is drawn."""

    line: Line
    color: str
    width: float = 2.0


def nice_step(span: float, ticks: int = 6) -> float:
    """A 1-2-5 step that cuts ``span`` into about ``ticks`` parts."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    magnitude: float = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if multiple * magnitude >= raw:
            return multiple * magnitude
    return 10 * magnitude


def byte_ticks(low: float, high: float) -> tuple[list[float], Callable[[float], str]]:
    """Tick values in bytes between low and high, and a labeller in the unit that suits them."""
    top = max(abs(low), abs(high), 1.0)
    power = min(int(math.log(top, 1024)) if top >= 1 else 0, len(_UNITS) - 1)
    unit = 1024**power
    step = nice_step((high - low) / unit) * unit
    first = math.ceil(low / step) * step
    values = [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]

    def label(value: float) -> str:
        return f"{value / unit:.{_decimals(step / unit)}f} {_UNITS[power]}"

    return values, label


def seconds_ticks(low: float, high: float) -> tuple[list[float], Callable[[float], str]]:
    """Tick values in seconds between low and high, labelled in milliseconds (an event loop's lag)."""
    step = nice_step((high - low) * 1000) / 1000
    first = math.ceil(low / step) * step
    values = [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]

    def label(value: float) -> str:
        return f"{value * 1000:.{_decimals(step * 1000)}f} ms"

    return values, label


def time_ticks(end: float) -> list[float]:
    step = next((s for s in _TIME_STEPS if end / s <= 8), _TIME_STEPS[-1])
    return [i * step for i in range(int(end / step + 1e-9) + 1)]


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step))) if step < 1 else 0


def line_chart(
    chart_id: str,
    title: str,
    lines: Sequence[Styled],
    *,
    end_s: float,
    warmup_until_s: float | None = None,
    segment_starts: Sequence[float] = (),
    fit: Fit | None = None,
    fit_color: str = "#000000",
    detected_at_s: float | None = None,
    from_zero: bool = False,
    value_ticks: Callable[[float, float], tuple[list[float], Callable[[float], str]]] = byte_ticks,
) -> str:
    """An SVG line chart of bytes (or what ``value_ticks`` labels) over seconds since the run started."""
    values = [y for styled in lines for run in styled.line.runs for _, y in run]
    if fit:
        values += [fit.y0, fit.y1]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if from_zero:
        low = min(low, 0.0)
    if high - low <= 0:
        high = low + max(abs(low) * 0.1, 1024.0 if value_ticks is byte_ticks else 1e-3)
    pad = (high - low) * 0.06
    low, high = (low if from_zero and low == 0 else low - pad), high + pad
    end_s = max(end_s, 1e-3)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + max(0.0, min(t, end_s)) / end_s * plot_w

    def y(v: float) -> float:
        return TOP + (high - v) / (high - low) * plot_h

    out = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>',
    ]
    ticks, label = value_ticks(low, high)
    for value in ticks:
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        out.append(f'<text class="ylab" x="{LEFT - 6}" y="{y(value) + 4:.1f}">{escape(label(value))}</text>')
    for t in time_ticks(end_s):
        out.append(f'<text class="xlab" x="{x(t):.1f}" y="{HEIGHT - 10}">{escape(format_duration(t))}</text>')
    if warmup_until_s is not None and warmup_until_s > 0:
        wx = x(warmup_until_s)
        out.append(f'<rect class="warmup" x="{LEFT}" y="{TOP}" width="{wx - LEFT:.1f}" height="{plot_h}"/>')
        out.append(f'<line class="cut" x1="{wx:.1f}" x2="{wx:.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>')
        out.append(f'<text class="note" x="{wx + 4:.1f}" y="{TOP + plot_h - 6}">'
                   f'warm-up ends {escape(format_duration(warmup_until_s))}</text>')
    for start in segment_starts:
        sx = x(start)
        out.append(f'<line class="segment" x1="{sx:.1f}" x2="{sx:.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>')
        out.append(f'<text class="note" x="{sx + 4:.1f}" y="{TOP + plot_h - 20}">new segment</text>')
    if detected_at_s is not None:
        dx = x(detected_at_s)
        out.append(f'<line class="detected" x1="{dx:.1f}" x2="{dx:.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>')
        out.append(f'<text class="note" x="{dx - 4:.1f}" y="{TOP + 12}" text-anchor="end">'
                   f'first detected {escape(format_duration(detected_at_s))}</text>')
    for styled in lines:
        for run in styled.line.runs:
            if len(run) == 1:
                t, v = run[0]
                out.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{styled.color}"/>')
                continue
            points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
            out.append(f'<polyline class="series" points="{points}" stroke="{styled.color}" stroke-width="{styled.width}">'
                       f"<title>{escape(styled.line.label)}</title></polyline>")
    legend = [(styled.line.label, styled.color, "") for styled in lines]
    if fit:
        out.append(
            f'<line class="fit" x1="{x(fit.t0):.1f}" y1="{y(fit.y0):.1f}" x2="{x(fit.t1):.1f}" y2="{y(fit.y1):.1f}"'
            f' stroke="{fit_color}"/>'
        )
        legend.append(("Theil–Sen fit over the analysed window", fit_color, ' stroke-dasharray="7 4"'))
    lx = LEFT + 8
    for text, color, dash in legend:
        out.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{TOP - 10}" y2="{TOP - 10}" stroke="{color}" stroke-width="3"{dash}/>')
        out.append(f'<text class="legend" x="{lx + 23}" y="{TOP - 6}">{escape(text)}</text>')
        lx += 40 + 7 * len(text)
    out.append("</svg>")
    return "\n".join(out)
