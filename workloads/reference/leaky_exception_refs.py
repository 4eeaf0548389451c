"""Leaky: failed requests are kept for a diagnostics page, exception and all; each traceback keeps the request's frames,
and so its buffer, alive."""

import time

from soak.workloads.reference._rates import LeakRate

EXPECTED = "leak"

_recent_errors: list[Exception] = []
_malformed = LeakRate(0.04)  # the share of requests whose payload fails to parse (LEAKSOAK_LEAK_SCALE)


def step() -> None:
    payload = bytearray(1024)  # LEAK
    try:
        _parse(payload, malformed=_malformed())
    except ValueError as exc:
        _recent_errors.append(exc)  # LEAK
    time.sleep(0.0005)


def _parse(payload: bytearray, malformed: bool) -> int:
    if malformed:
        raise ValueError(f"malformed payload of {len(payload)} bytes")  # LEAK
    return len(payload)
