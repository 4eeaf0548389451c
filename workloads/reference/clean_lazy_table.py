"""Clean: a big lookup table (about 8 MB traced) loaded on first use, by the first report request (request 500), then only read."""

import itertools
import time

EXPECTED = "clean"
SETTLE_CALLS = 500  # the table is loaded

_requests = itertools.count()
_table: dict[int, tuple[str, float]] | None = None


def _region_table() -> dict[int, tuple[str, float]]:
    global _table
    if _table is None:
        _table = {code: (f"region-{code:06d}", code * 0.001) for code in range(40_000)}
    return _table


def step() -> None:
    n = next(_requests)
    if n % 500 == 499:  # a report request: needs the table
        _ = _region_table()[n % 40_000]
    time.sleep(0.0005)
