"""Leaky: every twentieth request starts a short job and keeps its handle "to check on later",
never waiting for it, so each exited job stays in the process table as a zombie."""

import subprocess
import time

EXPECTED = "leak"

_jobs: list[subprocess.Popen[bytes]] = []
_calls = 0


def step() -> None:
    global _calls
    _calls += 1
    if _calls % 20 == 0:
        _jobs.append(subprocess.Popen(["true"]))  # LEAK
    time.sleep(0.005)
