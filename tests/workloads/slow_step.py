"""Clean, with slow iterations: a snapshot waits for an iteration boundary (up to 2 s), so one
requested every 0.25 s finds the previous one still in progress."""

import time


def step() -> None:
    time.sleep(0.8)
