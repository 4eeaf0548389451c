"""Leaky twice: an application cache that is never evicted, and a stdlib logger per session
(``logging`` keeps every logger forever). Used to check that a suppression accepts one and
leaves the other."""

import logging
import time

_responses: list[bytes] = []
_calls = 0


def step() -> None:
    global _calls
    _calls += 1
    _cache_response()
    if _calls % 2 == 0:
        _session_logger(_calls)
    time.sleep(0.0005)


def _cache_response() -> None:
    _responses.append(bytes(300))  # LEAK


def _session_logger(session_id: int) -> None:
    logging.getLogger(f"two_leaks.session.{session_id}")  # LEAK
