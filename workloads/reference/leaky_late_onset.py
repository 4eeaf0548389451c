"""Leaky, late: clean until a feature flag flips ``ONSET_S`` seconds after import, then audit records pile up.

Before the flip each request's audit record is shipped and dropped; after it, a share of the
records (LEAKSOAK_LEAK_SCALE) is also kept in a list that nothing drains. ``ONSET_S`` comes from
``LEAKSOAK_LATE_ONSET_S`` (default 24 s: 40% of a one-minute run).
"""

import itertools
import os
import time

from soak.workloads.reference._rates import LeakRate

EXPECTED = "leak"
ONSET_S = float(os.environ.get("LEAKSOAK_LATE_ONSET_S", "24"))

_started = time.monotonic()
_request_ids = itertools.count()
_audit_trail: list[bytes] = []
_kept = LeakRate(0.2)  # the share of records kept once the flag is on (LEAKSOAK_LEAK_SCALE)


def step() -> None:
    request_id = next(_request_ids)
    record = f"{time.time():.6f} request={request_id} route=/api/v2/orders status=200 user=svc-checkout ".encode() * 3  # LEAK
    _audit_trail.append(record)  # LEAK
    flag_on = time.monotonic() - _started >= ONSET_S
    if not (flag_on and _kept()):
        _audit_trail.pop()  # shipped
    time.sleep(0.0005)
