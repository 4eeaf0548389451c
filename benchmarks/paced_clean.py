"""A clean workload that mostly sleeps: churn of short-lived objects, then a pause.

benchmarks/self_soak.py soaks it for an hour; pacing keeps its CPU cost small, so that what is
measured is the supervisor (scheduler, writer, analysis) rather than a busy worker.
"""

import json
import random
import time

_rng = random.Random(11)


def step() -> None:
    items = [{"n": i, "blob": "x" * _rng.randint(10, 2000)} for i in range(_rng.randint(1, 20))]
    decoded = json.loads(json.dumps(items))
    _ = sum(len(item["blob"]) for item in decoded)
    time.sleep(0.02)
