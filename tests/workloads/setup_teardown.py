"""Records its setup, calls and teardown in the file named by SOAK_TEST_MARKER."""

import os

_calls = 0


def setup() -> None:
    with open(os.environ["SOAK_TEST_MARKER"], "a") as marker:
        marker.write("setup\n")


def step() -> None:
    global _calls
    _calls += 1


def teardown() -> None:
    with open(os.environ["SOAK_TEST_MARKER"], "a") as marker:
        marker.write(f"teardown after {_calls} calls\n")
