"""Clean, with a big heap: 200,000 live gc-tracked objects held from the start, so that the
type census and a full collection cost milliseconds each (tests/test_pause_budget.py)."""

import time


class Node:
    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


HEAP = [[Node(i)] for i in range(100_000)]


def step() -> None:
    time.sleep(0.01)
