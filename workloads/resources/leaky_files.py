"""Leaky: every tenth request opens a log file and keeps the handle (the "close" is forgotten)."""

import os
import tempfile
import time
from typing import IO

EXPECTED = "leak"

_directory = tempfile.mkdtemp(prefix="leaksoak-files-")
_handles: list[IO[str]] = []
_calls = 0


def step() -> None:
    global _calls
    _calls += 1
    if _calls % 10 == 0:
        _handles.append(open(os.path.join(_directory, f"request-{_calls}.log"), "w"))  # LEAK
    time.sleep(0.005)


def teardown() -> None:
    for handle in _handles:
        handle.close()
