"""Clean: heavy churn of short-lived objects of mixed sizes; nothing outlives a call."""

import json
import random
import time

EXPECTED = "clean"

_rng = random.Random(7)


def step() -> None:
    items = [{"n": i, "blob": "x" * _rng.randint(10, 4000)} for i in range(_rng.randint(1, 40))]
    decoded = json.loads(json.dumps(items))
    total = sum(len(item["blob"]) for item in decoded)
    _ = f"{total}:{len(decoded)}"
    time.sleep(0.0005)
