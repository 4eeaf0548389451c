"""Source lookups for frames: the enclosing function's name and the line's text."""

from __future__ import annotations

import ast
import functools
import importlib.util
import linecache
import marshal
import os
import sys
from types import CodeType

Span = tuple[int, int, str]


@functools.lru_cache(maxsize=512)
def _definitions(filename: str) -> tuple[Span, ...]:
    """(first line, last line, qualified name) of every def and class in ``filename``.

    From the file's up-to-date ``.pyc`` when there is one (ten times faster than parsing: the
    first snapshot names every frame of every file it sees, stdlib and libraries included), else
    from its source.
    """
    code = _compiled(filename)
    if code is not None:
        spans: list[Span] = []
        _code_spans(code, spans)
        return tuple(spans)
    return _source_spans(filename)


def _compiled(filename: str) -> CodeType | None:
    """The code object in ``filename``'s cached bytecode, if it matches the source (3.11+)."""
    if sys.version_info < (3, 11):  # no co_qualname
        return None
    try:
        with open(importlib.util.cache_from_source(filename), "rb") as file:
            data = file.read()
        stat = os.stat(filename)
        if len(data) < 16 or data[:4] != importlib.util.MAGIC_NUMBER:
            return None
        if int.from_bytes(data[4:8], "little") & 1:  # hash-based pyc
            with open(filename, "rb") as file:
                if importlib.util.source_hash(file.read()) != data[8:16]:
                    return None
        elif (int.from_bytes(data[8:12], "little"), int.from_bytes(data[12:16], "little")) != (
            int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size & 0xFFFFFFFF,
        ):
            return None
        code = marshal.loads(memoryview(data)[16:])
    except (OSError, ValueError, EOFError, TypeError, NotImplementedError):
        return None
    return code if isinstance(code, CodeType) else None


def _code_spans(code: CodeType, spans: list[Span]) -> int:
    """Add the spans of ``code`` and the code nested in it; return its last line.

    Named as the source walk names them: ``f.g``, not ``f.<locals>.g``; lambdas and
    comprehensions belong to the function around them.
    """
    last = max((line for _, _, line in code.co_lines() if line is not None), default=code.co_firstlineno)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            last = max(last, _code_spans(const, spans))
    if not code.co_name.startswith("<"):
        spans.append((code.co_firstlineno, last, code.co_qualname.replace(".<locals>", "")))
    return last


def _source_spans(filename: str) -> tuple[Span, ...]:
    source = "".join(linecache.getlines(filename))
    if not source:
        return ()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ()
    spans: list[Span] = []
    # Statements only: a def or class is always a statement, so expressions (most of a module's
    # nodes) are never walked. The first snapshot names every frame of every file it sees.
    pending: list[tuple[list[ast.stmt], str]] = [(tree.body, "")]
    while pending:
        body, prefix = pending.pop()
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{node.name}"
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                spans.append((first, node.end_lineno or node.lineno, name))
                pending.append((node.body, name + "."))
                continue
            for field in ("body", "orelse", "finalbody"):  # if, for, while, with, try
                pending.append((getattr(node, field, []), prefix))
            for holder in [*getattr(node, "handlers", []), *getattr(node, "cases", [])]:  # except, case
                pending.append((holder.body, prefix))
    return tuple(spans)


def function_name(filename: str, line: int) -> str:
    """Qualified name of the innermost def enclosing ``line``, ``<module>``, or ``?`` if unknown."""
    spans = _definitions(filename)
    if not spans:
        return "<module>" if linecache.getlines(filename) else "?"
    best: Span | None = None
    for span in spans:
        if span[0] <= line <= span[1] and (best is None or span[0] >= best[0]):
            best = span
    return best[2] if best else "<module>"


def source_line(filename: str, line: int) -> str:
    return linecache.getline(filename, line).strip()
