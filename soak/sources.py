"""Source lookups for frames: the enclosing function's name and the line's text."""

from __future__ import annotations

import ast
import functools
import linecache


@functools.lru_cache(maxsize=512)
def _definitions(filename: str) -> tuple[tuple[int, int, str], ...]:
    """(first line, last line, qualified name) of every def and class in ``filename``."""
    source = "".join(linecache.getlines(filename))
    if not source:
        return ()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ()
    spans: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                spans.append((first, child.end_lineno or child.lineno, name))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return tuple(spans)


def function_name(filename: str, line: int) -> str:
    """Qualified name of the innermost def enclosing ``line``, ``<module>``, or ``?`` if unknown."""
    spans = _definitions(filename)
    if not spans:
        return "<module>" if linecache.getlines(filename) else "?"
    best: tuple[int, int, str] | None = None
    for span in spans:
        if span[0] <= line <= span[1] and (best is None or span[0] >= best[0]):
            best = span
    return best[2] if best else "<module>"


def source_line(filename: str, line: int) -> str:
    return linecache.getline(filename, line).strip()
