"""The audit backlog that ``handed_list`` fills: a module global that nothing drains."""

from __future__ import annotations

from typing import Any

_BACKLOG: list[Any] = []


def backlog() -> list[Any]:
    """Where audit events wait to be shipped (they never are)."""
    return _BACKLOG
