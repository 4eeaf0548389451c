"""Leaky: each request's audit event is appended to a list handed to ``remember``; the list is
``sink._BACKLOG``, a module global of another module, which the leaking line never names."""

import itertools
import time

from soak.workloads.holders import sink

EXPECTED = "leak"
HELD_BY = "soak.workloads.holders.sink._BACKLOG"


class AuditEvent:
    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.fields = {"id": request_id}


def remember(bucket: list[AuditEvent], event: AuditEvent) -> None:
    bucket.append(event)  # LEAK


_calls = itertools.count()


def step() -> None:
    n = next(_calls)
    if n % 10 == 0:
        remember(sink.backlog(), AuditEvent(n))
    time.sleep(0.0005)
