"""Leaky: each request keeps a numpy array; its 32 KiB of data is allocated by numpy's extension.

The Python tracers see the small array object on this module's line; the data buffer is
malloc'd inside numpy's compiled core, so ``--native`` names numpy and the calling line.
"""

from __future__ import annotations

import time

import numpy as np

EXPECTED = "leak"
_history: list[np.ndarray] = []


def step() -> None:
    _history.append(np.full(4096, 1.5))  # LEAK
    time.sleep(0.002)
