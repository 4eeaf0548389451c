"""Leaky: rendered pages cached under a string key, never evicted. The key and the page are
allocated on two lines, two allocation sites; one dict holds both, so they are one leak. The page
is stored on the line that makes it, so the dict's own table, which grows in steps as it fills,
is allocated at that site too rather than at a third line of its own."""

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
        _PAGES[key] = b"<html>%d</html>" % n + bytes(300)  # LEAK
    time.sleep(0.0005)
