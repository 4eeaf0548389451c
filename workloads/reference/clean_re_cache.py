"""Clean (stdlib): a regular expression built per user, so ``re`` compiles one per request; its cache is bounded."""

import itertools
import re
import time

EXPECTED = "clean"
SETTLE_CALLS = 512  # re keeps the last 512 compiled patterns (re._MAXCACHE)

_user_ids = itertools.count()


def step() -> None:
    user_id = next(_user_ids)
    line = f"user-{user_id}: 42 items in cart"
    match = re.match(rf"user-{user_id}: (\d+) items", line)
    assert match is not None and match.group(1) == "42"
    time.sleep(0.0005)
