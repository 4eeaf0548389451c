"""Clean: every request runs its work on a fixed pool of four threads."""

import time
from concurrent.futures import ThreadPoolExecutor

EXPECTED = "clean"

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pool")


def _work(n: int) -> int:
    return sum(range(n))


def step() -> None:
    for future in [_pool.submit(_work, 100) for _ in range(8)]:
        future.result()
    time.sleep(0.005)
