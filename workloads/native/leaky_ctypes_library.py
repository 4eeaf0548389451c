"""Leaky: each request asks a C library (through ctypes) for a 16 KiB record and never releases it.

No Python object is allocated for the record: only native tracking (``--native``) can name the
line; without it the process's growth is unexplained by the traced heap.
"""

from __future__ import annotations

import ctypes
import time

from soak.workloads.native._build import load_libretain

EXPECTED = "leak"
_lib: ctypes.CDLL | None = None


def setup() -> None:
    global _lib
    _lib = load_libretain()


def step() -> None:
    assert _lib is not None
    _lib.make_record(16384, 7)  # LEAK
    time.sleep(0.002)
