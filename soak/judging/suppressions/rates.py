"""Growth rates as rules write them: ``5 MB/h``, ``512KiB/10m``, ``1 GB/day``."""

from __future__ import annotations

from soak.durations import parse_duration, parse_size
from soak.errors import BadInput

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

