"""Reference workloads with known ground truth, used by the demo, the tests and the benchmarks.

Each module has a ``step`` function (``def`` or ``async def``, no arguments, called over and
over), a docstring saying what it does, and ground truth as module constants:

``EXPECTED``
    ``"leak"`` or ``"clean"``.
``# LEAK`` (a comment ending a source line)
    A line whose allocation is what leaks. Tests and benchmarks read the expected line numbers
    from these markers: the first finding of a leaky workload should be on one of them.
``EXPECTED_LIBRARY``
    For a leak whose allocation is inside a library: the distribution name (e.g.
    ``"prometheus_client"``) or ``"stdlib"``. The ``# LEAK`` markers are then on the application
    lines that call into it, which is what a finding's ``call_site`` should name.
``ONSET_S``
    For a leak that starts late: seconds after the module is imported at which it starts
    (``LEAKSOAK_LATE_ONSET_S``); before that the workload is clean.
``SETTLE_CALLS`` / ``SETTLE_S``
    For a clean workload whose memory levels off only after a while: the number of calls after
    which it is flat (a bounded cache is full, a lazy table is loaded), or, for a time-based one
    (a TTL cache), the seconds. Absent means flat from the first calls.

Steps pause briefly, like a request handler waiting on I/O (``time.sleep(0.0005)`` or
``await asyncio.sleep(0.0005)``), so that a leak grows at a steady, machine-independent rate
(roughly 1,000 calls a second). Every leaky workload leaks on a share of its calls set by
``LEAKSOAK_LEAK_SCALE`` (default 1.0; 0.1 leaks ten times slower), through ``_rates``. At scale 1
each leak grows by tens of KiB a second or more, so that it shows within a minute.

Modules whose names start with ``_`` are helpers, not workloads.
"""

import pkgutil


def names() -> list[str]:
    """The reference workloads' module names (helpers such as ``_rates`` left out)."""
    return sorted(module.name for module in pkgutil.iter_modules(__path__) if not module.name.startswith("_"))
