"""Leaky: every tenth request starts a watcher thread that waits for a shutdown that never comes."""

import threading
import time

EXPECTED = "leak"

_shutdown = threading.Event()
_calls = 0


def _watch_for_shutdown() -> None:
    _shutdown.wait()


def step() -> None:
    global _calls
    _calls += 1
    if _calls % 10 == 0:
        threading.Thread(target=_watch_for_shutdown, daemon=True).start()  # LEAK
    time.sleep(0.005)
