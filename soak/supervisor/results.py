"""How a run ended (:class:`RunResult`) and how it goes while it lasts (:class:`Progress`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from soak.analyzers import Analysis

if TYPE_CHECKING:
    from soak.judging.judgement import Judgement

LOST = ("failed", "oom-killed")
"""Statuses of a run whose measured process was lost (exit code 3)."""


@dataclass(frozen=True)
class RunResult:
    run_id: int
    db_path: str
    status: str
    """completed | interrupted | failed | oom-killed"""
    reason: str | None
    verdict: str
    """Of the findings that count: suppression rules accepted the others."""
    exit_code: int
    judgement: Judgement | None = None
    """What the run's suppression rules decided in its final analysis (None before one)."""

    @property
    def warnings(self) -> list[str]:
        """What needs a look in the rules (expired, unused, too broad...), one line each."""
        return self.judgement.warnings if self.judgement is not None else []


@dataclass(frozen=True)
class Progress:
    """What a progress display needs, after each analysis refresh and each snapshot in between."""

    elapsed_s: float
    duration_s: float
    snapshots: int
    rss: int | None
    traced_bytes: int | None
    analysis: Analysis
    """The latest refresh (before the first one: inconclusive, no findings)."""
    top: tuple[dict[str, Any], ...] = ()
    """The most severe findings as metrics publishes them: verdict, kind, growth_bytes_per_hour,
    where (``file.py:line``, or the resource)."""
    refreshed: bool = True
    """True after an analysis refresh; False after a snapshot taken in between."""
