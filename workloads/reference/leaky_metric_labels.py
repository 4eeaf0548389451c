"""Leaky (library): a prometheus_client counter labelled by user id; the metric keeps one child per user forever."""

import time

from prometheus_client import CollectorRegistry, Counter

from soak.workloads.reference._rates import fresh_ids

EXPECTED = "leak"
EXPECTED_LIBRARY = "prometheus_client"

# A registry of its own, so that importing this module twice (as a file and as a module) is fine.
_requests = Counter("app_requests", "Requests served, by user.", ["user_id"], registry=CollectorRegistry())
_user_ids = fresh_ids(0.1)  # a user never seen before on a share of requests (LEAKSOAK_LEAK_SCALE)


def step() -> None:
    user_id = next(_user_ids)
    _requests.labels(user_id).inc()  # LEAK
    time.sleep(0.0005)
