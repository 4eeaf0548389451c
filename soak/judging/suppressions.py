"""Known, accepted growth: suppression rules read from TOML, judged against a run's findings.

Rules come from ``[[suppress]]`` tables in ``leaksoak.toml``, ``[[tool.leaksoak.suppress]]`` in
``pyproject.toml`` or an explicit file. :func:`apply_rules` is pure: findings (as the JSON report
gives them) in, a :class:`Decision` out. :func:`generate_rules` writes rules for findings.
"""

from __future__ import annotations

import calendar
import datetime
import functools
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from soak.durations import parse_duration, parse_size
from soak.errors import BadInput
from soak.model.report import SuppressionStatus

ANY_FRAMES = "..."
"""In ``frames``: any number of frames, none included."""

LEAKSOAK_TOML = "leaksoak.toml"
PYPROJECT_TOML = "pyproject.toml"
KEYS = ("id", "reason", "owner", "expires", "frames", "call_site", "library", "type", "resource", "target",
        "max_growth")
MATCH_KEYS = ("frames", "call_site", "library", "type", "resource", "target")
TODO_REASON = "TODO: why this growth is accepted (text or an issue link)"
"""The reason :func:`generate_rules` leaves; a rules file still holding it is rejected."""
TOO_BROAD_SHARE = 0.5
"""A rule accepting more than this share of a run's findings (and more than one) is too broad."""
_MATCH_ALL = frozenset(("*", "*:*"))


class SuppressionsError(BadInput):
    """A malformed rules file: one line naming the file, the line and the problem (exit code 2)."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = path, line, problem
        super().__init__(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")


@dataclass(frozen=True)
class Rule:
    """One ``[[suppress]]`` table, checked. Every matching key given must hold for a finding."""

    id: str
    """Unique among the rules; the accepted findings name it."""
    reason: str
    """Why the growth is accepted: text or an issue link."""
    source: str
    """The file the rule was read from."""
    line: int
    """The line of its table in that file (1-based)."""
    owner: str | None = None
    expires: datetime.date | None = None
    """The last day the rule applies; None when not given or not a date (see ``expires_text``)."""
    expires_text: str | None = None
    """``expires`` as written when it is not a date ``YYYY-MM-DD``: the rule counts as expired."""
    frames: tuple[str, ...] | None = None
    """``FILE_GLOB:FUNCTION`` patterns, allocation frame first; ``...`` is any number of frames."""
    call_site: str | None = None
    """One ``FILE_GLOB:FUNCTION`` pattern for the finding's first application frame."""
    library: str | None = None
    """``application``, ``stdlib`` or a distribution name."""
    type: str | None = None
    """A glob on the finding's type name (``module.qualname``), for findings that carry one."""
    resource: str | None = None
    target: str | None = None
    """A glob on the run's target."""
    max_growth: str | None = None
    """As written, e.g. ``"5 MB/h"``."""
    max_growth_bytes_per_hour: float | None = None
    """Growth tolerated; a finding growing faster is not accepted. None: any growth."""
    finding_ids: frozenset[str] | None = None
    """Not a key of a rules file: the exact findings (by stable id) that ``soak ci --accept-baseline``
    accepts because its baseline run had them. Such a rule is never too broad nor unused."""

    @property
    def names_code(self) -> bool:
        """Whether the rule names code (a frame or a call site): a rule that does not is too broad."""
        if self.finding_ids is not None:
            return True
        patterns = [*(self.frames or ()), *([self.call_site] if self.call_site else [])]
        return any(p != ANY_FRAMES and p not in _MATCH_ALL for p in patterns)

    def expired(self, today: datetime.date) -> bool:
        """An unparseable date counts as expired; the rule applies through its ``expires`` day."""
        return self.expires_text is not None or (self.expires is not None and today > self.expires)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source

    def definition(self) -> dict[str, Any]:
        """What the rule matches and tolerates, as written (stored with the runs it judged)."""
        keys = {key: getattr(self, key) for key in (*MATCH_KEYS, "max_growth")}
        data: dict[str, Any] = {key: list(value) if key == "frames" else value for key, value in keys.items() if value is not None}
        if self.finding_ids is not None:
            data["finding_ids"] = sorted(self.finding_ids)
        return data


BASELINE_RULE = "accept-baseline"
"""The id of the rule ``soak ci --accept-baseline`` makes."""


def baseline_rule(finding_ids: Sequence[str], source: str) -> Rule:
    """A rule accepting exactly the findings ``finding_ids`` (those of a baseline run, ``source``)."""
    return Rule(id=BASELINE_RULE, reason=f"present in the baseline ({source}); accepted by --accept-baseline",
                source=source, line=0, finding_ids=frozenset(finding_ids))


@dataclass(frozen=True)
class Accepted:
    """A finding a rule accepts: reported in its own section, ignored by the verdict."""

    finding: Mapping[str, Any]
    """As the JSON report gives it."""
    rule: str
    """The id of the rule that accepted it."""
    growth_bytes_per_hour: float | None
    """The growth the rule accepted (the finding's own rate)."""
    max_growth_bytes_per_hour: float | None
    """The rule's tolerance, None when it accepts any rate."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON report's ``accepted`` entry: the finding, its ``rule`` and the rule's tolerance."""
        return {**self.finding, "rule": self.rule, "max_growth_bytes_per_hour": self.max_growth_bytes_per_hour}


@dataclass(frozen=True)
class OverLimit:
    """A finding a rule matches but does not accept: it grows faster than the rule's ``max_growth``."""

    finding: Mapping[str, Any]
    rule: str
    growth_bytes_per_hour: float | None
    """None when the finding has no byte rate, which a ``max_growth`` cannot vouch for."""
    max_growth_bytes_per_hour: float


@dataclass(frozen=True)
class Decision:
    """What a set of rules decided about a run's findings."""

    accepted: list[Accepted]
    remaining: list[Mapping[str, Any]]
    """The findings no rule accepted, in their order: these alone count for the verdict."""
    suppressions: SuppressionStatus
    over_limit: list[OverLimit]
    """Matched but growing faster than the rule tolerates (so among ``remaining``)."""
    warnings: list[str]
    """One line each, for stderr (without a ``soak: warning:`` prefix)."""
    rule_warnings: dict[str, list[str]] = field(default_factory=dict)
    """The same warnings by the id of the rule each is about."""

    def report_fields(self) -> dict[str, Any]:
        """The JSON report's ``accepted`` and ``suppressions`` (its ``findings`` are ``remaining``)."""
        return {"accepted": [a.as_dict() for a in self.accepted], "suppressions": self.suppressions.as_dict()}


# --- reading rules ---------------------------------------------------------------------------


def load_rules(path: str | None = None, *, directory: str | None = None) -> list[Rule]:
    """The rules of ``path``, or else of ``leaksoak.toml`` and ``pyproject.toml`` in ``directory``
    (the cwd), both read when both exist. Raises :class:`SuppressionsError` for a malformed file.

    An explicit ``pyproject.toml`` is read at ``[[tool.leaksoak.suppress]]``, any other file at
    ``[[suppress]]``. Missing default files give no rules; a missing explicit file is an error.
    """
    if path is not None:
        table = ("tool", "leaksoak", "suppress") if os.path.basename(path) == PYPROJECT_TOML else ("suppress",)
        text = _read(path, required=True)
        return parse_rules(text or "", path, table=table)
    rules: list[Rule] = []
    for name, table in ((LEAKSOAK_TOML, ("suppress",)), (PYPROJECT_TOML, ("tool", "leaksoak", "suppress"))):
        file = os.path.join(directory, name) if directory else name  # named as the user knows it
        text = _read(file, required=False)
        if text is not None:
            rules.extend(parse_rules(text, file, table=table, taken=rules))
    return rules


def parse_rules(text: str, source: str, *, table: tuple[str, ...] = ("suppress",),
                taken: Sequence[Rule] = ()) -> list[Rule]:
    """The checked rules of the TOML ``text`` at the array of tables ``table``.

    ``source`` names the file in errors and warnings; ``taken`` are rules read before (from
    another file) whose ids these must not repeat.
    """
    from soak.judging.pyproject import _toml_loads

    toml = _toml_loads()
    if toml is None:  # Python 3.10 without tomli: only a file that holds rules needs it
        if table[-1] in text:
            raise SuppressionsError(source, None, "reading suppression rules needs Python 3.11+ or `pip install tomli`")
        return []
    lines = _Lines(text, table)
    document = _loads(toml, text, source)
    node: Any = document
    for depth, key in enumerate(table[:-1]):
        node = node.get(key, {})
        if not isinstance(node, dict):
            raise SuppressionsError(source, lines.key(".".join(table[:depth + 1])), f"[{'.'.join(table[:depth + 1])}] must be a table")
    if table == ("suppress",):
        unknown = sorted(set(document) - {"suppress"})
        if unknown:
            raise SuppressionsError(source, lines.key(unknown[0]),
                                    f"unknown key {unknown[0]!r}; a rules file holds [[suppress]] tables only")
    entries = node.get(table[-1], [])
    dotted = ".".join(table)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise SuppressionsError(source, lines.key(table[-1]), f"{dotted} must be an array of tables: [[{dotted}]]")
    seen = {rule.id: rule for rule in taken}
    rules = []
    for index, entry in enumerate(entries):
        rule = _rule(entry, index, source, lines)
        if rule.id in seen:
            first = seen[rule.id]
            at = f"line {first.line}" if first.source == source else first.where
            raise SuppressionsError(source, lines.key("id", index), f"duplicate suppression id {rule.id!r} (first at {at})")
        seen[rule.id] = rule
        rules.append(rule)
    return rules


def _read(path: str, *, required: bool) -> str | None:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        if required:
            raise SuppressionsError(path, None, "no such file") from None
        return None
    except OSError as exc:
        raise SuppressionsError(path, None, f"cannot read: {exc.strerror}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SuppressionsError(path, raw[:exc.start].count(b"\n") + 1, "not UTF-8 text") from exc


def _loads(toml: Any, text: str, source: str) -> dict[str, Any]:
    try:
        document: dict[str, Any] = toml.loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError; its position is only in the message
        message = str(exc)
        position = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
        if position:
            problem = f"not valid TOML: {message[:position.start()]} (column {position.group(2)})"
            raise SuppressionsError(source, int(position.group(1)), problem) from exc
        end = re.search(r"\s*\(at end of document\)", message)
        line = text.count("\n") + (0 if text.endswith("\n") else 1) if end else None
        raise SuppressionsError(source, line, f"not valid TOML: {message[:end.start()] if end else message}") from exc
    return document


def _rule(entry: dict[str, Any], index: int, source: str, lines: _Lines) -> Rule:
    def fail(key: str | None, problem: str, value: str | None = None) -> SuppressionsError:
        line = lines.value(key, value, index) if key and value is not None else lines.key(key, index) if key else lines.table(index)
        return SuppressionsError(source, line, problem)

    name = entry.get("id")
    label = f"suppression {name!r}" if isinstance(name, str) and name.strip() else f"suppression #{index + 1}"
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise fail(unknown[0], f"unknown key {unknown[0]!r} in {label}; known: {', '.join(KEYS)}")
    for key in ("id", "reason"):
        if key not in entry:
            raise fail(None, f"{label} has no {key!r} (required)")
    strings: dict[str, str] = {}
    for key in ("id", "reason", "owner", "call_site", "library", "type", "resource", "target", "max_growth"):
        if key in entry:
            value = entry[key]
            if not isinstance(value, str) or not value.strip():
                raise fail(key, f"{key} of {label} must be a non-empty string")
            strings[key] = value.strip()
    if strings["reason"] == TODO_REASON:
        raise fail("reason", f"reason of {label} is still the TODO that `soak suppress` left: say why this growth is accepted")
    expires, expires_text = None, None
    if "expires" in entry:
        value = entry["expires"]
        if isinstance(value, datetime.datetime):
            expires = value.date()
        elif isinstance(value, datetime.date):
            expires = value
        elif isinstance(value, str):
            expires = _date(value)
            if expires is None:
                expires_text = value
        else:
            raise fail("expires", f"expires of {label} must be a date YYYY-MM-DD")
    frames = None
    if "frames" in entry:
        value = entry["frames"]
        if not isinstance(value, list) or not value or not all(isinstance(p, str) for p in value):
            raise fail("frames", f"frames of {label} must be a non-empty list of \"FILE_GLOB:FUNCTION\" strings or \"...\"")
        for pattern in value:
            problem = _pattern_problem(pattern)
            if problem:
                raise fail("frames", f"frames of {label}: {pattern!r} {problem}", pattern)
        frames = tuple(p.strip() for p in value)
    if "call_site" in strings:
        problem = _pattern_problem(strings["call_site"], ellipsis=False)
        if problem:
            raise fail("call_site", f"call_site of {label}: {strings['call_site']!r} {problem}")
    limit = None
    if "max_growth" in strings:
        try:
            limit = parse_rate(strings["max_growth"])
        except ValueError as exc:
            raise fail("max_growth", f"max_growth of {label}: {exc}") from None
    return Rule(
        id=strings["id"], reason=strings["reason"], source=source, line=lines.table(index),
        owner=strings.get("owner"), expires=expires, expires_text=expires_text, frames=frames,
        call_site=strings.get("call_site"), library=strings.get("library"), type=strings.get("type"),
        resource=strings.get("resource"), target=strings.get("target"), max_growth=strings.get("max_growth"),
        max_growth_bytes_per_hour=limit,
    )


def _date(text: str) -> datetime.date | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        return None
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        return None


def _pattern_problem(pattern: str, *, ellipsis: bool = True) -> str | None:
    """Why ``pattern`` is not ``FILE_GLOB[:FUNCTION]`` (or ``...`` where allowed); None if it is."""
    text = pattern.strip()
    if text == ANY_FRAMES:
        return None if ellipsis else "cannot be \"...\"; give one FILE_GLOB:FUNCTION pattern"
    file, colon, function = text.rpartition(":") if ":" in text else (text, "", "")
    if not file:
        return "has no file glob; use \"*:FUNCTION\" for any file"
    if colon and not function:
        return "has an empty function after ':'; leave out ':' for any function"
    return None


_RATE_UNITS = {"hour": "h", "hours": "h", "hr": "h", "min": "m", "minute": "m", "minutes": "m",
               "sec": "s", "second": "s", "seconds": "s", "day": "d", "days": "d"}


def parse_rate(text: str) -> float:
    """Bytes per hour in a rate such as ``5 MB/h``, ``512KiB/10m`` or ``1 GB/day``. Raises ValueError."""
    size, slash, period = text.partition("/")
    if not slash or not size.strip() or not period.strip():
        raise ValueError(f"{text!r} is not a rate; use e.g. \"5 MB/h\" or \"512KiB/10m\"")
    unit = period.strip().lower()
    unit = _RATE_UNITS.get(unit, unit)
    if unit[:1].isalpha():
        unit = "1" + unit
    try:
        return parse_size(size) * 3600 / parse_duration(unit)
    except BadInput:
        raise ValueError(f"{text!r} is not a rate; use e.g. \"5 MB/h\" or \"512KiB/10m\"") from None


def format_rate(bytes_per_hour: float) -> str:
    """A rate :func:`parse_rate` reads back: ``4.5 GB/h``, ``120 kB/h``, with three significant digits."""
    for unit, scale in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if bytes_per_hour >= scale:
            return f"{bytes_per_hour / scale:.3g} {unit}/h"
    return f"{max(1, round(bytes_per_hour))} B/h"


class _Lines:
    """Where tables and keys are in the text, for errors about values that tomllib accepted."""

    def __init__(self, text: str, table: tuple[str, ...]) -> None:
        self.lines = text.splitlines()
        part = [rf"(?:{re.escape(p)}|\"{re.escape(p)}\"|'{re.escape(p)}')" for p in table]
        header = re.compile(r"^\s*\[\[\s*" + r"\s*\.\s*".join(part) + r"\s*\]\]")
        self.headers = [n for n, line in enumerate(self.lines) if header.match(line)]

    def table(self, index: int | None = None) -> int:
        """The line of the ``index``-th table (1-based); where the array is, if not written as headers."""
        if index is not None and index < len(self.headers):
            return self.headers[index] + 1
        return self.key(None)

    def key(self, key: str | None, index: int | None = None) -> int:
        """The line of ``key`` in the ``index``-th table (anywhere, for None), else of the table."""
        if key is None:
            return self.headers[0] + 1 if self.headers else 1
        start, end = 0, len(self.lines)
        if index is not None and index < len(self.headers):
            start = self.headers[index] + 1
            end = next((n for n in range(start, len(self.lines)) if self.lines[n].lstrip().startswith("[")), end)
        last = key.split(".")[-1]
        pattern = re.compile(rf"^\s*(?:\[\[?\s*)?(?:{re.escape(key)}|\"{re.escape(last)}\"|'{re.escape(last)}'|{re.escape(last)})\s*[=\].]")
        for n in range(start, end):
            if pattern.match(self.lines[n]):
                return n + 1
        return self.table(index) if index is not None else 1

    def value(self, key: str, value: str, index: int) -> int:
        """The line holding the string ``value`` of ``key`` (one element of a list spread over lines)."""
        first = self.key(key, index)
        quoted = (json.dumps(value), f"'{value}'")
        for n in range(first - 1, len(self.lines)):
            if n >= first and self.lines[n].lstrip().startswith("["):
                break
            if any(q in self.lines[n] for q in quoted):
                return n + 1
        return first


# --- matching --------------------------------------------------------------------------------


def apply_rules(findings: Sequence[Mapping[str, Any]], rules: Sequence[Rule], *, target: str | None,
                today: datetime.date) -> Decision:
    """Judge a run's findings (as the JSON report gives them) against ``rules``.

    The first rule (in order) that matches a finding and tolerates its growth accepts it. An
    expired rule does not apply. ``target`` is the run's target; ``today`` decides expiry.
    """
    active = [rule for rule in rules if not rule.expired(today)]
    matched: dict[str, int] = {rule.id: 0 for rule in active}
    accepted_by: dict[str, int] = {rule.id: 0 for rule in active}
    accepted: list[Accepted] = []
    remaining: list[Mapping[str, Any]] = []
    over_limit: list[OverLimit] = []
    for finding in findings:
        taken = None
        for rule in active:
            if not rule_matches(rule, finding, target):
                continue
            matched[rule.id] += 1
            growth = _growth(finding)
            limit = rule.max_growth_bytes_per_hour
            if limit is not None and (growth is None or growth > limit):
                over_limit.append(OverLimit(finding, rule.id, growth, limit))
                continue
            taken = Accepted(finding, rule.id, growth, limit)
            break
        if taken is None:
            remaining.append(finding)
        else:
            accepted.append(taken)
            accepted_by[taken.rule] += 1
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
        notes.append((item.rule, f"suppression {item.rule!r} matches finding {item.finding.get('id')} ({_place(item.finding)}) "
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
    return Decision(accepted, remaining, status, over_limit, [text for _, text in notes], by_rule)


def rule_matches(rule: Rule, finding: Mapping[str, Any], target: str | None) -> bool:
    """Whether every matching key of ``rule`` holds for ``finding`` (growth and expiry aside)."""
    if rule.finding_ids is not None and finding.get("id") not in rule.finding_ids:
        return False
    if rule.frames is not None and not frames_match(rule.frames, finding.get("traceback") or []):
        return False
    if rule.call_site is not None:
        site = first_application_frame(finding)
        if site is None or not frame_matches(rule.call_site, site):
            return False
    if rule.library is not None and _distribution(rule.library) != _distribution(str(finding.get("library") or "")):
        return False
    if rule.type is not None and not (isinstance(finding.get("type"), str) and fnmatchcase(finding["type"], rule.type)):
        return False
    if rule.resource is not None and rule.resource != finding.get("resource"):
        return False
    if rule.target is not None and (target is None or not path_matches(rule.target, target)):
        return False
    return True


def first_application_frame(finding: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The finding's ``call_site``, or its allocation frame when that is application code."""
    if finding.get("call_site"):
        site: Mapping[str, Any] = finding["call_site"]
        return site
    traceback = finding.get("traceback") or []
    if finding.get("library") == "application" and traceback:
        frame: Mapping[str, Any] = traceback[0]
        return frame
    return None


def frames_match(patterns: Sequence[str], traceback: Sequence[Mapping[str, Any]]) -> bool:
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


def frame_matches(pattern: str, frame: Mapping[str, Any]) -> bool:
    """``FILE_GLOB[:FUNCTION]`` against a frame ``{file, line, function}``."""
    return _frame_matches(pattern, str(frame.get("file") or ""), str(frame.get("function") or ""))


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


def _growth(finding: Mapping[str, Any]) -> float | None:
    value = finding.get("growth_bytes_per_hour")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _place(finding: Mapping[str, Any]) -> str:
    where = finding.get("where") or {}
    if where:
        return f"{where.get('file')}:{where.get('line')} in {where.get('function')}"
    return str(finding.get("resource") or finding.get("kind"))


# --- generating ------------------------------------------------------------------------------


def generate_rules(findings: Sequence[Mapping[str, Any]], *, today: datetime.date, target: str | None = None,
                   run_label: str | None = None, months: int = 3) -> str:
    """``[[suppress]]`` tables, ready to edit, one per finding: pasted back with a real reason,
    they accept exactly those findings (a comment says when one also matches another finding).

    Frames come from the traceback (the last two parts of each path); a library finding is
    matched by its library and call site; a finding without frames by its resource and ``target``.
    """
    expires = add_months(today, months)
    rules: list[tuple[Mapping[str, Any], dict[str, Any]]] = []
    ids: set[str] = set()
    for finding in findings:
        keys = _rule_keys(finding, target)
        keys = {"id": _unique(_rule_id(finding), ids), "reason": TODO_REASON, "expires": expires.isoformat(), **keys}
        rules.append((finding, keys))
    head = ["# Suppression rules generated by `soak suppress`"
            + (f" from {run_label}" if run_label else "") + f" on {today.isoformat()}.",
            "# Fill in each reason (text or an issue link); set owner; renew expires only after a look.",
            "# Paste into leaksoak.toml, or as [[tool.leaksoak.suppress]] into pyproject.toml."]
    blocks = ["\n".join(head)]
    for finding, keys in rules:
        rule = _as_rule(keys)
        others = [f.get("id") for f in findings if f is not finding and rule_matches(rule, f, target)]
        blocks.append(_toml_table(finding, keys, others))
    return "\n\n".join(blocks) + "\n"


def add_months(day: datetime.date, months: int) -> datetime.date:
    """``day`` moved ``months`` calendar months on, clamped to the last day of the month."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def _rule_keys(finding: Mapping[str, Any], target: str | None) -> dict[str, Any]:
    traceback = finding.get("traceback") or []
    library = finding.get("library")
    if finding.get("kind") == "library" and finding.get("call_site"):
        return {"library": library, "call_site": _frame_pattern(finding["call_site"])}
    if traceback:
        # trailing "...": callers beyond the stored frames (a deeper or shallower driver) still match
        return {"frames": [*(_frame_pattern(frame) for frame in traceback), ANY_FRAMES]}
    keys: dict[str, Any] = {}
    if finding.get("resource"):
        keys["resource"] = finding["resource"]
    if target:
        keys["target"] = _glob_escape(target)
    return keys


def _frame_pattern(frame: Mapping[str, Any]) -> str:
    file = "/".join(str(frame.get("file") or "").replace(os.sep, "/").split("/")[-2:])
    function = str(frame.get("function") or "")
    pattern = _glob_escape(file)
    return pattern if function in ("", "?") else f"{pattern}:{_glob_escape(function)}"


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _rule_id(finding: Mapping[str, Any]) -> str:
    site = first_application_frame(finding) or (finding.get("where") or {})
    stem = os.path.splitext(os.path.basename(str(site.get("file") or "")))[0]
    function = str(site.get("function") or "").replace("<", "").replace(">", "")
    parts = [finding.get("library") if finding.get("kind") == "library" else None, stem, function]
    name = "-".join(str(p) for p in parts if p and p != "?") or str(finding.get("resource") or finding.get("kind") or "finding")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "finding"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    taken.add(candidate)
    return candidate


def _as_rule(keys: Mapping[str, Any]) -> Rule:
    return Rule(id=keys["id"], reason=keys["reason"], source="<generated>", line=0,
                frames=tuple(keys["frames"]) if "frames" in keys else None, call_site=keys.get("call_site"),
                library=keys.get("library"), resource=keys.get("resource"), target=keys.get("target"))


def _toml_table(finding: Mapping[str, Any], keys: Mapping[str, Any], others: Sequence[Any]) -> str:
    growth = _growth(finding)
    words = [str(finding[k]) for k in ("verdict", "kind") if finding.get(k)]
    about = f"# {' '.join([*words, 'finding'])} {finding.get('id')}: {_place(finding)}"
    if growth is not None:
        about += f", {format_rate(growth)}"
    out = [about, "[[suppress]]"]
    for key, value in keys.items():
        if key == "frames":
            out.append("frames = [\n" + "".join(f"    {_toml_string(p)},\n" for p in value) + "]")
        else:
            out.append(f"{key} = {_toml_string(str(value))}")
        if key == "reason":
            out.append('# owner = "team or person"')
    if growth is not None and growth > 0:
        out.append(f"# max_growth = {_toml_string(format_rate(growth * 2))}  # to fail again above twice today's rate")
    if not any(k in keys for k in ("frames", "call_site")):
        out.append("# no frames to match: this rule is too broad; scope it with target, or fix the leak")
    if others:
        out.append(f"# also matches finding(s) {', '.join(map(str, others))}: the frames cannot tell them apart")
    return "\n".join(out)


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string
