"""The ``[tool.leaksoak]`` table of ``pyproject.toml``: defaults for ``soak ci``.

    [tool.leaksoak]
    targets = ["app/handlers.py:handle_one", "app.jobs:run_once"]
    duration = "5m"        # per target
    interval = "5s"
    fail-on = "leak"
    tracer = "sampled"     # or "exact", "off"
    sample-interval = "16KiB"

Options on the command line win over the file. ``[[tool.leaksoak.suppress]]`` tables are
suppression rules, read and checked by :mod:`soak.judging.suppressions`.
"""

from __future__ import annotations

import os
from typing import Any

from soak.errors import BadInput
from soak.judging.suppressions.reading import toml_reader

KEYS = ("targets", "duration", "interval", "fail-on", "tracer", "sample-interval", "suppress")


def read_config(directory: str | None = None) -> dict[str, Any]:
    """The checked ``[tool.leaksoak]`` table of ``pyproject.toml`` in ``directory`` (the cwd), or {}.

    Raises BadInput for a file that cannot be parsed, unknown keys and values of the wrong type.
    """
    path = os.path.join(directory or os.getcwd(), "pyproject.toml")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BadInput(f"cannot read {path!r}: {exc.strerror}") from exc
    toml = toml_reader()
    if toml is None:
        if b"tool.leaksoak" in raw:
            raise BadInput(f"reading [tool.leaksoak] from {path!r} needs Python 3.11+ or `pip install tomli`")
        return {}
    try:
        document = toml.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise BadInput(f"{path!r} is not valid TOML: {exc}") from exc
    table = document.get("tool", {}).get("leaksoak", {})
    if not isinstance(table, dict):
        raise BadInput(f"[tool.leaksoak] in {path!r} must be a table")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise BadInput(f"unknown key {unknown[0]!r} in [tool.leaksoak] of {path!r}; known: {', '.join(KEYS)}")
    targets = table.get("targets")
    if targets is not None and not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
        raise BadInput(f"targets in [tool.leaksoak] of {path!r} must be a list of strings")
    for key in ("duration", "interval"):
        value = table.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
            raise BadInput(f"{key} in [tool.leaksoak] of {path!r} must be a duration such as \"5m\"")
        if isinstance(value, (int, float)):
            table[key] = str(value)
    for key in ("fail-on", "tracer"):
        if key in table and not isinstance(table[key], str):
            raise BadInput(f"{key} in [tool.leaksoak] of {path!r} must be a string")
    interval = table.get("sample-interval")
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, (str, int))):
        raise BadInput(f"sample-interval in [tool.leaksoak] of {path!r} must be a size such as \"16KiB\"")
    if isinstance(interval, int):
        table["sample-interval"] = str(interval)
    return table
