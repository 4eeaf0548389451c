"""Leaky: a renderer memoised with ``functools.lru_cache(maxsize=None)`` on the user id: one entry per user, forever."""

import functools
import time

from soak.workloads.reference._rates import fresh_ids

EXPECTED = "leak"

_user_ids = fresh_ids(0.1)  # a user never seen before on a share of requests (LEAKSOAK_LEAK_SCALE)
_GREETING = "<section class='greeting'><h2>Welcome back, user {user_id}!</h2><p>{body}</p></section>"
_BODY = "Here is what changed since your last visit. " * 6


@functools.cache
def _render_greeting(user_id: int) -> str:
    return _GREETING.format(user_id=user_id, body=_BODY)  # LEAK


def step() -> None:
    user_id = next(_user_ids)
    html = _render_greeting(user_id)  # LEAK
    assert html.startswith("<section")
    time.sleep(0.0005)
