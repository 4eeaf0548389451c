"""Leaky: requests register a listener; one in four (at scale 1) never unregisters it."""

import time
from collections.abc import Callable

from soak.workloads.reference._rates import LeakRate

EXPECTED = "leak"
_listeners: list[Callable[[], bytes]] = []
_forgets = LeakRate(0.25)  # the share of requests that never unregister (LEAKSOAK_LEAK_SCALE)


def step() -> None:
    """Handle one request: listen for its event; a share of them never stops."""
    forgets_to_unregister = _forgets()
    payload = bytes(200)  # LEAK
    _listeners.append(_on_event(payload))  # LEAK
    if not forgets_to_unregister:
        _listeners.pop()
    time.sleep(0.0005)


def _on_event(payload: bytes) -> Callable[[], bytes]:
    return lambda: payload
