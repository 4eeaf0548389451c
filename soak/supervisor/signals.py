"""The process as a run finds it and leaves it: signal handlers and logging levels, set for a
while and put back."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any


@contextmanager
def signal_handlers(handlers: dict[signal.Signals, Any]) -> Iterator[None]:
    """Install ``handlers`` for a while, then put the previous ones back. Only the main thread may
    install a handler: elsewhere none is installed and the process's own stay as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: installed outside Python, cannot be put back
                signal.signal(sig, handler)


@contextmanager
def logging_level(name: str, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def file_size_limit_as_error() -> AbstractContextManager[None]:
    """While a run writes: a file-size limit (ulimit -f) would otherwise kill the supervisor
    mid-write (SIGXFSZ); ignored, it is an error of the write, which is reported."""
    return signal_handlers({signal.SIGXFSZ: signal.SIG_IGN})
