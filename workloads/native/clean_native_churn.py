"""Clean: native records and numpy buffers are taken and given back on every request."""

from __future__ import annotations

import ctypes
import time

import numpy as np

from soak.workloads.native._build import load_libretain

EXPECTED = "clean"
_lib: ctypes.CDLL | None = None


def setup() -> None:
    global _lib
    _lib = load_libretain()


def step() -> None:
    assert _lib is not None
    record = _lib.make_record(16384, 7)
    total = float(np.full(4096, 1.5).sum())
    _lib.release_record(record)
    assert total > 0
    time.sleep(0.002)
