"""The model of a ``soak ci`` report: how each target's soak ended and what CI makes of it.

Built by :mod:`soak.supervisor.ci`, rendered by the JUnit, Markdown-summary and annotation reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from soak.model.report import Report

if TYPE_CHECKING:
    from soak.judging.compare import TargetComparison

PASS, FAIL, ERROR = "pass", "fail", "error"


@dataclass(frozen=True)
class TargetResult:
    """How one target's soak ended and what CI makes of it."""

    target: str
    outcome: str
    """pass | fail | error"""
    run_id: int | None
    status: str
    """completed | interrupted | failed, or ``bad_input`` when the worker could not load it."""
    reason: str | None
    verdict: str
    report: Report | None = None
    comparison: TargetComparison | None = None

    @property
    def regressed(self) -> bool:
        return self.comparison is not None and self.comparison.status == "regression"


@dataclass(frozen=True)
class CiResult:
    targets: list[TargetResult]
    fail_on: str
    bad_input: str | None = None
    """The first target that could not be loaded, as a one-line message."""
    interrupted: bool = False
    unused_suppressions: list[str] = field(default_factory=list)
    """Suppression rules that matched no finding in any target's run."""
    fail_on_unused_suppressions: bool = False
    """``--fail-on-unused-suppressions``: an unused rule fails the job."""

    @property
    def unused_fail(self) -> bool:
        """Whether unused suppression rules fail the job."""
        return self.fail_on_unused_suppressions and bool(self.unused_suppressions)

    @property
    def exit_code(self) -> int:
        """2 if a target was bad input, 3 if a run failed or was interrupted, 1 if one failed (or
        a suppression rule went unused, with ``--fail-on-unused-suppressions``), else 0."""
        if self.bad_input:
            return 2
        if self.interrupted or any(t.outcome == ERROR for t in self.targets):
            return 3
        return 1 if any(t.outcome == FAIL for t in self.targets) or self.unused_fail else 0
