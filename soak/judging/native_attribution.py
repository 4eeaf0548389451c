"""Who a native site's memory belongs to: the distribution (or system library) whose compiled
code allocated it, and the first application line of the Python frames that called into it."""

from __future__ import annotations

import os
import re

from soak.judging.attribution import APPLICATION, Attributor
from soak.model.finding import Evidence, Frame

_SONAME_VERSION = re.compile(r"\.so(\.\d+)*$")


def native_library(path: str, attributor: Attributor) -> str:
    """The distribution of an installed extension (``numpy``), ``stdlib`` for the interpreter's
    own extension modules, the application for its own objects, else the system library's name
    (``libc``, ``libssl``)."""
    absolute = os.path.abspath(path)
    if absolute.startswith((*attributor.site_dirs, *attributor.stdlib_dirs, *attributor.application_roots)):
        return attributor.library(absolute)
    return _SONAME_VERSION.sub("", os.path.basename(path)) or path


def native_attribution(evidence: Evidence, attributor: Attributor) -> tuple[str, Frame | None, list[Frame]]:
    """(library, call site, traceback) of a native site from its probe evidence.

    The traceback is the native frames (function, and the object as the file when there is no
    source line) followed by the Python frames, allocation frame first; the call site is the
    first application frame among the Python ones.
    """
    native = [Frame(source if line else (obj or source), int(line or 0), function)
              for function, source, line, obj in evidence.get("native") or []]
    python = [Frame(file, int(line), function) for file, line, function in evidence.get("python") or []]
    call_site = next((frame for frame in python if attributor.library(frame.file) == APPLICATION), None)
    return native_library(str(evidence.get("object") or "?"), attributor), call_site, native + python
