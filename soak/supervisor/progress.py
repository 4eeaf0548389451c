"""Progress of ``soak run`` and ``soak watch`` on stderr: a live panel on a terminal, else a
plain line every so often, at most about a hundred in a run (for CI logs)."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from soak.durations import format_duration
from soak.reports.presenter import human_bytes

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

    from soak.supervisor.results import Progress

TOP_N = 5
VERDICT_STYLES = {"leak": "bold red", "suspect": "bold yellow", "clean": "bold green", "inconclusive": "bold"}


def progress_line(progress: Progress) -> str:
    """One line: elapsed of planned, snapshots, memory, and the verdict so far."""
    analysis = progress.analysis
    leaks = sum(f.verdict == "leak" for f in analysis.findings)
    return (
        f"[{format_duration(progress.elapsed_s)} / {format_duration(progress.duration_s)}] "
        f"{progress.snapshots} snapshots, RSS {human_bytes(progress.rss)}, traced {human_bytes(progress.traced_bytes)}, "
        f"verdict so far: {analysis.verdict}" + (f" ({leaks} leaking site(s))" if leaks else "")
    )


def line_every(duration_s: float | None) -> float:
    """Seconds between plain progress lines: at least 5 s, and about 100 lines in a planned run
    (an eight-hour soak logs every five minutes, not every refresh)."""
    if not duration_s or duration_s == float("inf"):
        return 60.0
    return max(5.0, duration_s / 100)


def is_terminal(stream: TextIO) -> bool:
    """True when ``stream`` is a terminal that can redraw a panel in place."""
    try:
        return stream.isatty() and os.environ.get("TERM", "") not in ("dumb", "unknown")
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class ProgressDisplay:
    """Shows a run's progress on ``stream`` (stderr by default) until closed.

    Use as a context manager around ``soak.api.run`` / ``soak.api.watch``: pass :meth:`started`
    (after printing the start line) and the display itself as ``on_progress``. On a terminal, a
    rich live panel is redrawn after each snapshot and each analysis refresh, and its clock ticks
    in between; elsewhere a snapshot or refresh prints one line when :func:`line_every` has passed
    since the last, with the latest refresh's verdict (so a slow analysis does not silence the
    log). Closing it stops the panel and clears it, so the report that follows starts on a clean
    screen; it never touches signals, so Ctrl-C still reaches the supervisor.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = is_terminal(self.stream)
        self.title = "leaksoak"
        self._progress: Progress | None = None
        self._received = time.monotonic()
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._last_line = float("-inf")

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def started(self, title: str, line: str) -> None:
        """Print the start line; on a terminal, then show the panel (titled ``title``)."""
        print(line, file=self.stream, flush=True)
        self.title = title
        if self.live and self._live is None:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, highlight=False)
            # Anything else printed meanwhile goes above the panel (rich redirects stdout and stderr).
            self._live = Live(console=console, get_renderable=self._render, refresh_per_second=2, transient=True)
            self._live.start()

    def __call__(self, progress: Progress) -> None:
        live = self._live
        if live is not None:
            with self._lock:
                self._progress, self._received = progress, time.monotonic()
            live.refresh()
        elif progress.elapsed_s - self._last_line >= line_every(progress.duration_s):
            self._last_line = progress.elapsed_s
            print(progress_line(progress), file=self.stream, flush=True)

    def close(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def _render(self) -> RenderableType:
        with self._lock:
            progress, received = self._progress, self._received
        return render_panel(self.title, progress, time.monotonic() - received)


def render_panel(title: str, progress: Progress | None, since_s: float = 0.0) -> RenderableType:
    """The panel for ``progress``, ``since_s`` seconds after it was reported."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    if progress is None:
        grid.add_row("status", "starting: waiting for the first snapshot")
        return Panel(grid, title=title, title_align="left", expand=False)
    elapsed = progress.elapsed_s + since_s
    if progress.duration_s and progress.duration_s != float("inf"):
        elapsed = min(elapsed, progress.duration_s)
        remaining = f"{format_duration(max(progress.duration_s - elapsed, 0.0))} left of {format_duration(progress.duration_s)}"
    else:
        remaining = "until stopped"
    grid.add_row("elapsed", f"{format_duration(elapsed)}  ({remaining})")
    grid.add_row("snapshots", f"{progress.snapshots}")
    traced = f", traced heap {human_bytes(progress.traced_bytes)}" if progress.traced_bytes is not None else ""
    grid.add_row("memory", f"RSS {human_bytes(progress.rss)}{traced}")
    verdict = progress.analysis.verdict
    grid.add_row("verdict", Text.assemble((verdict.upper(), VERDICT_STYLES.get(verdict, "")), f"  ({_verdict_note(progress)})"))
    if progress.top:
        growers = Table(box=None, padding=(0, 2), pad_edge=False, header_style="dim")
        growers.add_column("where")
        growers.add_column("growth/h", justify="right")
        growers.add_column("verdict")
        for finding in progress.top[:TOP_N]:
            verdict_text = Text(finding["verdict"], style=VERDICT_STYLES.get(finding["verdict"], ""))
            growers.add_row(str(finding["where"]), _rate(finding), verdict_text)
        grid.add_row("top growers", growers)
    grid.add_row("", Text("Ctrl-C ends the run early with a report", style="dim"))
    return Panel(grid, title=title, title_align="left", expand=False)


def _rate(finding: dict[str, Any]) -> str:
    rate = finding.get("growth_bytes_per_hour")
    return "?" if rate is None else f"+{human_bytes(rate)}"


def _verdict_note(progress: Progress) -> str:
    analysis = progress.analysis
    if analysis.verdict == "inconclusive":
        return "so far: too few snapshots after warm-up to judge"
    if analysis.verdict == "clean":
        return "so far: nothing grows significantly"
    leaks = sum(f.verdict == "leak" for f in analysis.findings)
    return f"so far: {leaks} leaking, {len(analysis.findings) - leaks} suspect"
