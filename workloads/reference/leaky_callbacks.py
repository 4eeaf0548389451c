"""Leaky: every request registers a listener that nobody unregisters."""

import time
from typing import Callable

EXPECTED = "leak"

_listeners: list[Callable[[], bytes]] = []


def _on_event(payload: bytes) -> Callable[[], bytes]:
    return lambda: payload


def step() -> None:
    payload = bytes(200)  # LEAK
    _listeners.append(_on_event(payload))  # LEAK
    time.sleep(0.0005)
