"""How fast the reference leaks leak: one knob, ``LEAKSOAK_LEAK_SCALE`` (default 1.0).

A leaky workload leaks on a share of its calls, ``share × LEAKSOAK_LEAK_SCALE`` (at most every
call), spread evenly and deterministically: no randomness, so two runs leak alike. At scale 0.1
a leak grows ten times slower, for the long runs that must catch slow leaks. The variable is
read when a workload module is imported.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator

SCALE_VARIABLE = "LEAKSOAK_LEAK_SCALE"


def scale() -> float:
    """``LEAKSOAK_LEAK_SCALE`` as a positive number (1.0 when unset)."""
    text = os.environ.get(SCALE_VARIABLE, "").strip()
    if not text:
        return 1.0
    value = float(text)
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{SCALE_VARIABLE} must be a positive number, not {text!r}")
    return value


class LeakRate:
    """Call it once per request: True on ``share × scale()`` of the calls, evenly spaced.

    Call n (from 0) fires when ``floor((n + 1) · p)`` exceeds ``floor(n · p)``, so at p = 0.25
    every fourth call fires and at p = 1 every call does.
    """

    def __init__(self, share: float = 1.0) -> None:
        self.share = min(1.0, share * scale())
        self._calls = 0

    def __call__(self) -> bool:
        n = self._calls
        self._calls = n + 1
        return math.floor((n + 1) * self.share) > math.floor(n * self.share)


def fresh_ids(share: float = 1.0) -> Iterator[int]:
    """Request ids: a new one on ``share × scale()`` of requests, else the last one again (a retry).

    When every request is new this is a plain ``itertools.count()``, so that each new id is
    allocated on the caller's line, as it would be in the application.
    """
    new = LeakRate(share)
    if new.share >= 1.0:
        return itertools.count()
    return _with_retries(new)


def _with_retries(new: LeakRate) -> Iterator[int]:
    counter = itertools.count()
    last = next(counter)
    while True:
        if new():
            last = next(counter)
        yield last
