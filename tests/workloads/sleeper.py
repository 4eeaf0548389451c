"""Clean and quiet: a handler that mostly waits."""

import time


def step() -> None:
    time.sleep(0.01)
