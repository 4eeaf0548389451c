"""The type census as a probe: live gc-tracked objects per type (``module.qualname``), unit
``objects``, of the workload's objects only, as the growth since the first census (the count
then is the series' evidence). Growth is a ``type`` finding.

Which objects are leaksoak's own: every object that leaksoak's own state reaches through
containers and through instances of leaksoak's classes -- the in-process probes host, with its
table of stacks, its tracer and the snapshot it is building -- and every instance of a class
defined in leaksoak's machinery (``soak.*`` outside the workloads that ship inside it). The walk
stops at functions, classes, modules and frames, and at instances of any other class, so it never
steps from leaksoak's driver into the workload's globals. Only gc-tracked objects are counted
(instances, containers); strings, bytes and numbers are not (their memory is the sites' business).

The census costs about 0.1 µs an object (0.2 s at 2M live objects; more under ``--tracer exact``,
where each count above 256 is a new traced int), so it runs only when its own last cost is at
most :data:`CENSUS_BUDGET` of the time since it last ran; the analysis judges its series on the
snapshots it read (soak.analysis.STRETCHED_PROBES).
"""

from __future__ import annotations

import collections
import gc
import time
import types
from collections import Counter
from collections.abc import Callable, Iterable

from soak.probes.probe import MAX_SERIES_PER_PROBE, FindingKind, ProbeResult, Reading

CENSUS_BUDGET = 0.02
"""The census runs when its last pause is at most this share of the time since it last ran."""
SERVICE_CENSUS_BUDGET = 0.002
"""The budget beside a live service (the agent): its requests wait out every pause, so a census
of 6 ms runs every 3 s and one of 20 ms every 10 s, not every second."""
CENSUS_MAX_EVERY_S = 60.0
"""...and at least this often, whatever it costs."""

_CONTAINERS = (dict, list, tuple, set, frozenset, collections.deque, collections.OrderedDict)
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.MethodType, types.BuiltinFunctionType,
           types.CodeType, types.FrameType)
_OWN_WORKLOAD_MODULES = ("soak.workloads", "soak.workloads.adapters")
"""Of ``soak.workloads``, what leaksoak's own driver is; the workloads shipped beside it (the
reference corpus, resources, holders, async, native) are workloads like any other."""


def is_own_module(module: object) -> bool:
    """True for leaksoak's own modules (the workloads shipped inside ``soak`` are not)."""
    if not isinstance(module, str) or not (module == "soak" or module.startswith("soak.")):
        return False  # a class's __module__ may be a descriptor (some extension types)
    return not module.startswith("soak.workloads.") or module in _OWN_WORKLOAD_MODULES


def type_name(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    return f"{module if isinstance(module, str) else '?'}.{cls.__qualname__}"


def own_objects(roots: Iterable[object]) -> dict[int, object]:
    """leaksoak's own gc-tracked objects reachable from ``roots``, by id (see the module doc)."""
    seen: dict[int, object] = {}
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE) or not gc.is_tracked(obj):
            continue
        if not isinstance(obj, _CONTAINERS) and not is_own_module(type(obj).__module__):
            continue  # the workload's (or a library's) instance: not ours, and not walked
        seen[id(obj)] = obj
        stack.extend(gc.get_referents(obj))
    return seen


class TypeProbe:
    """Live gc-tracked objects per type, leaksoak's own left out."""

    name = "types"
    kind: FindingKind = "type"

    def __init__(self, own_roots: Callable[[], Iterable[object]] = tuple, budget: float = CENSUS_BUDGET) -> None:
        self._own_roots = own_roots
        self.budget = budget
        self._ran_at = float("-inf")
        self._cost_s = 0.0
        self._baseline: dict[str, int] | None = None
        self._reported: set[str] = set()
        self.total: int | None = None
        """All gc-tracked objects at the last census (leaksoak's included)."""

    def due(self) -> bool:
        """Whether the census may run now: its last pause is at most ``budget`` of the time since
        (:data:`CENSUS_BUDGET` in the worker, :data:`SERVICE_CENSUS_BUDGET` in the agent)."""
        since = time.monotonic() - self._ran_at
        return since >= min(CENSUS_MAX_EVERY_S, self._cost_s / self.budget)

    def collect(self) -> ProbeResult:
        started = time.perf_counter()
        own = own_objects(self._own_roots())
        objects = gc.get_objects()
        self.total = len(objects)
        counts: Counter[type] = Counter(map(type, objects))  # at C speed; then leaksoak's own taken out
        counts.subtract(map(type, own.values()))
        del objects, own
        by_name = {type_name(cls): n for cls, n in counts.items() if n > 0 and not is_own_module(cls.__module__)}
        baseline = self._baseline = by_name if self._baseline is None else self._baseline
        growth = {name: by_name.get(name, 0) - baseline.get(name, 0) for name in by_name.keys() | baseline.keys()}
        # A heap has hundreds of types: those that grew most since the first census join the
        # reported ones (a leak's type as soon as it grows), and stay, so that no series drops
        # out and back. Each value is the growth since the first census: before a type joins,
        # its series reads 0, which is what it then was.
        for name in sorted((n for n in growth if growth[n] > 0 and n not in self._reported), key=lambda n: (-growth[n], n)):
            if len(self._reported) >= MAX_SERIES_PER_PROBE:
                break
            self._reported.add(name)
        readings = [Reading(name, "objects", growth.get(name, -baseline.get(name, 0))) for name in sorted(self._reported)]
        evidence = {name: {"objects_at_first_census": baseline.get(name, 0)} for name in self._reported}
        self._ran_at = time.monotonic()
        self._cost_s = time.perf_counter() - started
        return ProbeResult(readings, evidence)
