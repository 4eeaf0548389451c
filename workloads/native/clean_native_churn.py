"""Clean: native records and numpy buffers are taken and given back on every request."""

from __future__ import annotations

import time

import numpy as np

from soak.workloads.native._build import libretain

EXPECTED = "clean"


def setup() -> None:
    libretain()


def step() -> None:
    lib = libretain()
    record = lib.make_record(16384, 7)
    total = float(np.full(4096, 1.5).sum())
    lib.release_record(record)
    assert total > 0
    time.sleep(0.002)
