"""Leaky, slowly, amid heavy churn: like clean_churn, but a share of requests keeps its first item in a history list."""

import json
import random
import time
from typing import Any

from soak.workloads.reference._rates import LeakRate

EXPECTED = "leak"

_rng = random.Random(11)
_history: list[dict[str, Any]] = []
_keeps = LeakRate(0.05)  # the share of requests whose first item is kept (LEAKSOAK_LEAK_SCALE)


def step() -> None:
    items = [{"n": i, "blob": "x" * _rng.randint(10, 4000)} for i in range(_rng.randint(1, 40))]  # LEAK
    decoded = json.loads(json.dumps(items))
    total = sum(len(item["blob"]) for item in decoded)
    if _keeps():
        _history.append(items[0])  # LEAK
    _ = f"{total}:{len(decoded)}"
    time.sleep(0.0005)
