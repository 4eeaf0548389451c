"""Leaky on twelve lines at once, each faster than the one before: more findings than
``soak ci`` may annotate."""

import time

_kept: list[list[bytes]] = [[] for _ in range(12)]


def step() -> None:
    _kept[0].append(bytes(100))  # LEAK
    _kept[1].append(bytes(200))  # LEAK
    _kept[2].append(bytes(300))  # LEAK
    _kept[3].append(bytes(400))  # LEAK
    _kept[4].append(bytes(500))  # LEAK
    _kept[5].append(bytes(600))  # LEAK
    _kept[6].append(bytes(700))  # LEAK
    _kept[7].append(bytes(800))  # LEAK
    _kept[8].append(bytes(900))  # LEAK
    _kept[9].append(bytes(1000))  # LEAK
    _kept[10].append(bytes(1100))  # LEAK
    _kept[11].append(bytes(1200))  # LEAK
    time.sleep(0.001)
