"""Verdicts, ``--fail-on`` levels, and the one rule that joins them: does a verdict fail?

No imports of leaksoak's: the analyzers, the supervisor, ``soak ci``, the reports and the pytest plugin all
stand on it, and the plugin loads in every pytest process.
"""

from __future__ import annotations

from collections.abc import Iterable

LEAK, SUSPECT, CLEAN, INCONCLUSIVE = "leak", "suspect", "clean", "inconclusive"
VERDICTS = (LEAK, SUSPECT, CLEAN, INCONCLUSIVE)
"""A run's (or a finding's, which is a leak or a suspect) verdict, the most severe first."""

NEVER = "never"
FAILING_LEVELS = (LEAK, SUSPECT)
"""The levels that can fail something: all that ``soak ci`` and the pytest plugin accept."""
FAIL_ON = (*FAILING_LEVELS, NEVER)
"""``--fail-on``: fail on a leak; on a leak or a suspect; never (``soak run`` and ``soak watch``)."""

_FAILING = {LEAK: (LEAK,), SUSPECT: (LEAK, SUSPECT), NEVER: ()}


def fails(verdict: str, fail_on: str) -> bool:
    """True when a run, a target or a finding with ``verdict`` fails under ``--fail-on fail_on``."""
    if fail_on not in _FAILING:
        raise ValueError(f"fail-on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")
    return verdict in _FAILING[fail_on]


def most_severe(verdicts: Iterable[str]) -> str:
    """The most severe of ``verdicts`` (of the parts of an analysis, or of a tree's processes);
    inconclusive when there are none."""
    return min(verdicts, key=VERDICTS.index, default=INCONCLUSIVE)


def counted_verdict(verdict: str, counted: list[str]) -> str:
    """A run's verdict once suppressions have accepted some of its findings: the analysis'
    ``verdict`` when it found no growth (clean, inconclusive), else the most severe verdict of the
    findings that still count (``counted``), or clean when every finding was accepted."""
    if verdict not in FAILING_LEVELS:
        return verdict
    return min(counted, key=VERDICTS.index) if counted else CLEAN
