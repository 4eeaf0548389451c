"""Leaky: each request asks a C library (through ctypes) for a 16 KiB record and never releases it.

No Python object is allocated for the record: only native tracking (``--native``) can name the
line; without it the process's growth is unexplained by the traced heap.
"""

from __future__ import annotations

import time

from soak.workloads.native._build import libretain

EXPECTED = "leak"


def setup() -> None:
    libretain()


def step() -> None:
    libretain().make_record(16384, 7)  # LEAK
    time.sleep(0.002)
