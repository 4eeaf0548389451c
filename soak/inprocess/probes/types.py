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

The census counts types in C where the sampled tracer's extension is built
(``soak.inprocess.probes._sampler.count_types``: about 6 ms at 1M objects, against 30 ms for
``Counter(map(type, ...))``), plus leaksoak's own objects walked in Python. It is one of the jobs
the pause budget rations (soak.inprocess.probes.budget): on a big heap it does not run every snapshot, and
the analysis judges its series on the snapshots it read (soak.judging.analysis.STRETCHED_PROBES).
"""

from __future__ import annotations

import collections
import gc
import types
from collections import Counter
from collections.abc import Callable, Iterable

from soak.inprocess.probes.probe import MAX_SERIES_PER_PROBE, FindingKind, ProbeResult, Reading

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


def _count_types_in_python(objects: list[object]) -> dict[type, int]:
    return dict(Counter(map(type, objects)))


def _type_counter() -> Callable[[list[object]], dict[type, int]]:
    try:
        from soak.inprocess.probes._sampler import count_types
    except ImportError:  # the extension is not built for this interpreter
        return _count_types_in_python
    return count_types


count_types = _type_counter()
"""Objects of a list counted by type (in C when the sampled tracer's extension is built)."""


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

    def __init__(self, own_roots: Callable[[], Iterable[object]] = tuple) -> None:
        self._own_roots = own_roots
        self._baseline: dict[str, int] | None = None
        self._reported: set[str] = set()
        self.total: int | None = None
        """All gc-tracked objects at the last census (leaksoak's included)."""

    def collect(self) -> ProbeResult:
        own = own_objects(self._own_roots())
        objects = gc.get_objects()
        self.total = len(objects)
        counts = count_types(objects)
        for cls, n in count_types(list(own.values())).items():  # leaksoak's own taken out
            counts[cls] = counts.get(cls, 0) - n
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
        return ProbeResult(readings, evidence)
