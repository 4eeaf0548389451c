"""Reference workloads with known ground truth, used by the demo, the tests and the benchmarks.

Each module has a ``step`` function (``def`` or ``async def``) and ``EXPECTED``: ``"leak"`` or
``"clean"``. A leaking line carries the comment ``# LEAK``; tests and benchmarks read the
expected line numbers from there. Steps pause briefly, like a request handler waiting on I/O,
so that a leak grows at a steady, machine-independent rate (roughly 1,000 calls a second).
"""

import pkgutil


def names() -> list[str]:
    """The reference workloads' module names."""
    return sorted(module.name for module in pkgutil.iter_modules(__path__))
