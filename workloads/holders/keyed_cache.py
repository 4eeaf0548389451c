"""Leaky: rendered pages cached under a string key, never evicted. The key and the page are
allocated on two lines, two allocation sites; one dict holds both, so they are one leak."""

import itertools
import time

EXPECTED = "leak"
HELD_BY = "soak.workloads.holders.keyed_cache._PAGES"

_PAGES: dict[str, bytes] = {}
_calls = itertools.count()


def step() -> None:
    n = next(_calls)
    if n % 10 == 0:
        key = "/".join(("", "users", str(n), "profile", "x" * 200))  # LEAK
        page = b"<html>%d</html>" % n + bytes(300)  # LEAK
        _PAGES[key] = page
    time.sleep(0.0005)
