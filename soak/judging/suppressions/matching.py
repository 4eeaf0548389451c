"""Matching: a run's findings judged against its rules, and what the rules decided.

Rules match the finding model (soak.model.finding.Finding): its traceback, call site, library,
type, resource and growth.
"""

from __future__ import annotations

import datetime
import functools
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from soak.judging.suppressions.rates import format_rate
from soak.judging.suppressions.rule import ANY_FRAMES, Rule
from soak.model.finding import Finding, Frame
from soak.model.report import SuppressionStatus

TOO_BROAD_SHARE = 0.5
"""A rule accepting more than this share of a run's findings (and more than one) is too broad."""


@dataclass(frozen=True)
class Accepted:
    """A finding a rule accepts: reported in its own section, ignored by the verdict."""

    finding: Finding
    rule: str
    """The id of the rule that accepted it."""
    growth_bytes_per_hour: float | None
    """The growth the rule accepted (the finding's own rate)."""
    max_growth_bytes_per_hour: float | None
    """The rule's tolerance, None when it accepts any rate."""


@dataclass(frozen=True)
class OverLimit:
    """A finding a rule matches but does not accept: it grows faster than the rule's ``max_growth``."""

    finding: Finding
    rule: str
    growth_bytes_per_hour: float | None
    """None when the finding has no byte rate, which a ``max_growth`` cannot vouch for."""
    max_growth_bytes_per_hour: float


@dataclass(frozen=True)
class Decision:
    """What a set of rules decided about a run's findings."""

    findings: list[Finding]
    """The findings judged, in their order."""
    taken: list[Accepted | None]
    """For each of ``findings``: the rule's acceptance, or None when no rule accepted it."""
    suppressions: SuppressionStatus
    over_limit: list[OverLimit]
    """Matched but growing faster than the rule tolerates (so among ``remaining``)."""
    warnings: list[str]
    """One line each, for stderr (without a ``soak: warning:`` prefix)."""
    rule_warnings: dict[str, list[str]] = field(default_factory=dict)
    """The same warnings by the id of the rule each is about."""

    @property
    def accepted(self) -> list[Accepted]:
        return [taken for taken in self.taken if taken is not None]

    @property
    def remaining(self) -> list[Finding]:
        """The findings no rule accepted, in their order: these alone count for the verdict."""
        return [finding for finding, taken in zip(self.findings, self.taken, strict=True) if taken is None]


def apply_rules(findings: Sequence[Finding], rules: Sequence[Rule], *, target: str | None,
                today: datetime.date) -> Decision:
    """Judge a run's findings against ``rules``.

    The first rule (in order) that matches a finding and tolerates its growth accepts it. An
    expired rule does not apply. ``target`` is the run's target; ``today`` decides expiry.
    """
    active = [rule for rule in rules if not rule.expired(today)]
    matched: dict[str, int] = {rule.id: 0 for rule in active}
    accepted_by: dict[str, int] = {rule.id: 0 for rule in active}
    decided: list[Accepted | None] = []
    over_limit: list[OverLimit] = []
    for finding in findings:
        taken = None
        for rule in active:
            if not rule_matches(rule, finding, target):
                continue
            matched[rule.id] += 1
            growth = byte_growth(finding)
            limit = rule.max_growth_bytes_per_hour
            if limit is not None and (growth is None or growth > limit):
                over_limit.append(OverLimit(finding, rule.id, growth, limit))
                continue
            taken = Accepted(finding, rule.id, growth, limit)
            accepted_by[rule.id] += 1
            break
        decided.append(taken)
    notes: list[tuple[str, str]] = []  # (rule id, warning)
    expired = [rule for rule in rules if rule.expired(today)]
    for rule in expired:
        if rule.expires_text is not None:
            notes.append((rule.id, f"suppression {rule.id!r} ({rule.where}) expires {rule.expires_text!r}, which is not a "
                                   "date YYYY-MM-DD: treated as expired, it no longer applies"))
        else:
            notes.append((rule.id, f"suppression {rule.id!r} ({rule.where}) expired on {rule.expires}: it no longer "
                                   "applies; remove it or renew it"))
    for item in over_limit:
        rate = "no byte growth rate" if item.growth_bytes_per_hour is None else f"grows {format_rate(item.growth_bytes_per_hour)}"
        notes.append((item.rule, f"suppression {item.rule!r} matches finding {item.finding.finding_id} ({location(item.finding)}) "
                                 f"but it {rate}, above its max_growth {format_rate(item.max_growth_bytes_per_hour)}: not accepted"))
    unused = [rule for rule in active if matched[rule.id] == 0 and rule.finding_ids is None]
    for rule in unused:
        notes.append((rule.id, f"suppression {rule.id!r} ({rule.where}) matched no finding of this run"))
    too_broad = []
    for rule in active:
        count = accepted_by[rule.id]
        if not rule.names_code:
            too_broad.append(rule)
            notes.append((rule.id, f"suppression {rule.id!r} ({rule.where}) is too broad: it names no frames or call_site"))
        elif rule.finding_ids is None and count > 1 and count > len(findings) * TOO_BROAD_SHARE:
            too_broad.append(rule)
            notes.append((rule.id, f"suppression {rule.id!r} ({rule.where}) is too broad: it accepted {count} of the "
                                   f"run's {len(findings)} findings"))
    status = SuppressionStatus([r.id for r in expired], [r.id for r in unused], [r.id for r in too_broad])
    by_rule: dict[str, list[str]] = {}
    for ident, text in notes:
        by_rule.setdefault(ident, []).append(text)
    return Decision(list(findings), decided, status, over_limit, [text for _, text in notes], by_rule)


def rule_matches(rule: Rule, finding: Finding, target: str | None) -> bool:
    """Whether every matching key of ``rule`` holds for ``finding`` (growth and expiry aside)."""
    if rule.finding_ids is not None and finding.finding_id not in rule.finding_ids:
        return False
    if rule.frames is not None and not frames_match(rule.frames, finding.traceback):
        return False
    if rule.call_site is not None:
        site = first_application_frame(finding)
        if site is None or not frame_matches(rule.call_site, site):
            return False
    if rule.library is not None and _distribution(rule.library) != _distribution(finding.library or ""):
        return False
    if rule.type is not None and (finding.type is None or not fnmatchcase(finding.type, rule.type)):
        return False
    if rule.resource is not None and rule.resource != finding.resource:
        return False
    if rule.target is not None and (target is None or not path_matches(rule.target, target)):
        return False
    return True


def first_application_frame(finding: Finding) -> Frame | None:
    """The finding's ``call_site``, or its allocation frame when that is application code."""
    if finding.call_site:
        return finding.call_site
    if finding.library == "application":
        return finding.where
    return None


def frames_match(patterns: Sequence[str], traceback: Sequence[Frame]) -> bool:
    """Whether ``patterns`` match the whole traceback, allocation frame first; ``...`` matches
    any number of frames (none included)."""
    # reachable[j]: the patterns so far can consume exactly the first j frames
    reachable = [True] + [False] * len(traceback)
    for pattern in patterns:
        if pattern == ANY_FRAMES:
            for j in range(1, len(reachable)):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            reachable = [False] + [reachable[j] and frame_matches(pattern, traceback[j]) for j in range(len(traceback))]
    return reachable[-1]


def frame_matches(pattern: str, frame: Frame) -> bool:
    """``FILE_GLOB[:FUNCTION]`` against a frame."""
    return _frame_matches(pattern, frame.file, frame.function)


@functools.lru_cache(maxsize=1 << 16)
def _frame_matches(pattern: str, file: str, function: str) -> bool:
    # Cached: a run's findings share their callers' frames, and every refresh judges them again.
    glob, _, name = pattern.rpartition(":") if ":" in pattern else (pattern, "", "")
    if name and not fnmatchcase(function, name):
        return False
    return path_matches(glob, file)


def path_matches(pattern: str, path: str) -> bool:
    """A glob on the whole path, where ``*`` crosses ``/``; a relative pattern also matches at any
    directory (``app/handlers.py`` matches ``/srv/app/handlers.py``)."""
    path = path.replace(os.sep, "/")
    if fnmatchcase(path, pattern):
        return True
    return not pattern.startswith(("/", "*")) and fnmatchcase(path, "*/" + pattern)


def _distribution(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def byte_growth(finding: Finding) -> float | None:
    """The finding's growth in bytes per hour, None when it has no finite one."""
    value = finding.growth_bytes_per_hour
    return float(value) if value is not None and math.isfinite(value) else None


def location(finding: Finding) -> str:
    """Where the finding is, in a warning: ``file:line in function``, else its resource or kind."""
    where = finding.where
    if where:
        return f"{where.file}:{where.line} in {where.function}"
    return str(finding.resource or finding.kind)
