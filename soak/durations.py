"""Parse and format durations (``90s``, ``10m``, ``8h``, ``1h30m``, ``250ms``) and sizes (``2GiB``)."""

from __future__ import annotations

import math
import re

from soak.errors import BadInput

MAX_DURATION_S = 100 * 365 * 86400.0
"""The longest duration accepted (100 years): beyond it, clocks and schedules overflow."""

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str, *, option: str = "duration") -> float:
    """Seconds in ``text``; a bare number means seconds. Raises BadInput on anything else."""
    raw = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        seconds = float(raw)
    else:
        pos, seconds = 0, 0.0
        for match in _PART.finditer(raw):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(raw) or not raw:
            raise BadInput(
                f"--{option} {text!r} is not a duration; use e.g. 90s, 10m, 8h, 1h30m or 500ms"
            )
    if seconds <= 0:
        raise BadInput(f"--{option} {text!r} must be longer than zero")
    if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
        raise BadInput(f"--{option} {text!r} is too long; at most 100 years (36500d)")
    return seconds


def format_duration(seconds: float) -> str:
    """Short human form: ``59.5s``, ``12m05s``, ``3h20m``."""
    if seconds < 60:
        return f"{seconds:.3g}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
               "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4, "tb": 1000**4, "tib": 1024**4}


MAX_SIZE = 1024**6
"""The largest size accepted (1 EiB): more than any machine's memory, and within a 64-bit integer."""


def parse_size(text: str, *, option: str = "memory-limit") -> int:
    """Bytes in ``512MiB``, ``2GiB``, ``1.5G``, ``1000000``. Raises BadInput on anything else."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip().lower())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise BadInput(f"--{option} {text!r} is not a size; use e.g. 512MiB, 2GiB or a number of bytes")
    size = float(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if not math.isfinite(size) or size > MAX_SIZE:
        raise BadInput(f"--{option} {text!r} is too large; at most 1 EiB")
    if size < 1:
        raise BadInput(f"--{option} {text!r} must be at least one byte")
    return int(size)


def parse_share(text: str, *, option: str) -> float:
    """A share of time in ``5%`` or ``0.05``, between 0 and 1. Raises BadInput on anything else."""
    raw = text.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(%?)", raw)
    value = float(match.group(1)) / (100 if match.group(2) else 1) if match else -1.0
    if not 0 < value <= 1:
        raise BadInput(f"--{option} {text!r} is not a share of time; use e.g. 5% or 0.05 (more than 0, at most 100%)")
    return value
