"""Reading rules: ``[[suppress]]`` tables of TOML checked into :class:`Rule`, and a malformed file
reported as one line naming the file, the line and the problem."""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Sequence
from typing import Any

from soak.errors import BadInput
from soak.judging.suppressions.rates import parse_rate
from soak.judging.suppressions.rule import ANY_FRAMES, KEYS, TODO_REASON, Rule

LEAKSOAK_TOML = "leaksoak.toml"
PYPROJECT_TOML = "pyproject.toml"


def toml_reader() -> Any:
    """The TOML reader: tomllib (Python 3.11+), else tomli if installed, else None."""
    try:
        import tomllib  # Python 3.11+

        return tomllib
    except ModuleNotFoundError:
        try:
            import tomli  # type: ignore[import-not-found]

            return tomli
        except ModuleNotFoundError:
            return None


class SuppressionsError(BadInput):
    """A malformed rules file: one line naming the file, the line and the problem (exit code 2)."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = path, line, problem
        super().__init__(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")


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
    toml = toml_reader()
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

