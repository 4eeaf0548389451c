"""One-line descriptions of findings, shared by the CI outputs and ``soak compare``."""

from __future__ import annotations

import os

from soak.model.finding import Finding, Frame
from soak.reports.presenter import growth, human_bytes, label, unit_of


def workspace_root() -> str:
    """Where paths are shown relative to: ``$GITHUB_WORKSPACE`` in GitHub Actions, else the cwd."""
    return os.environ.get("GITHUB_WORKSPACE") or os.getcwd()


def display_path(file: str, root: str | None = None) -> str:
    """``file`` relative to ``root`` when it lies inside it, else as stored; always with ``/``."""
    root = root or workspace_root()
    if os.path.isabs(file):
        rel = os.path.relpath(file, root)
        if not rel.startswith(".."):
            file = rel
    return file.replace(os.sep, "/")


def application_frame(finding: Finding) -> Frame | None:
    """The application's line: the allocation itself, or the call into the library that allocates."""
    if finding.library == "application":
        return finding.where
    return finding.call_site


def place(finding: Finding, root: str | None = None) -> str:
    """``app.py:12``, ``app.py:12 (in json/decoder.py:353)`` for a library, or the resource."""
    where = finding.where
    if where is None:
        return label(finding) or finding.kind
    allocation = f"{display_path(where.file, root)}:{where.line}"
    caller = application_frame(finding)
    if caller is None or caller == where:
        return allocation
    return f"{display_path(caller.file, root)}:{caller.line} (in {allocation})"


def rate(bytes_per_hour: float | None) -> str:
    """``+380.2 MiB/h``."""
    if bytes_per_hour is None:
        return "?"
    sign = "-" if bytes_per_hour < 0 else "+"
    return f"{sign}{human_bytes(abs(bytes_per_hour))}/h"


def brief(finding: Finding, root: str | None = None) -> str:
    """``leak at workloads/x.py:16 +380.2 MiB/h``, ``leak at threads: app.poll +7,200 threads/hour``."""
    growing = rate(finding.growth_bytes_per_hour) if unit_of(finding) == "bytes" else growth(finding)
    return f"{finding.verdict} at {place(finding, root)} {growing}"
