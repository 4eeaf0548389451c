"""Clean: every twentieth request runs a job to completion (waited for) and hands work to a
fixed pool of two worker processes."""

import subprocess
import time
from concurrent.futures import ProcessPoolExecutor

EXPECTED = "clean"

_pool = ProcessPoolExecutor(max_workers=2)
_calls = 0


def step() -> None:
    global _calls
    _calls += 1
    if _calls % 20 == 0:
        subprocess.run(["true"], check=True)
        _pool.submit(sum, range(1000)).result()
    time.sleep(0.005)
