"""Clean (library): a prometheus_client counter labelled by method and status: a fixed set of children."""

import itertools
import time

from prometheus_client import CollectorRegistry, Counter

EXPECTED = "clean"
SETTLE_CALLS = 40  # every method and status seen

_METHODS = ("GET", "POST", "PUT", "DELETE")
_STATUSES = (200, 201, 204, 400, 401, 403, 404, 409, 500, 503)
_requests = Counter("app_requests", "Requests served.", ["method", "status"], registry=CollectorRegistry())
_request_ids = itertools.count()


def step() -> None:
    n = next(_request_ids)
    _requests.labels(_METHODS[n % 4], _STATUSES[n // 4 % 10]).inc()
    time.sleep(0.0005)
