"""Holder chains: what keeps a growing type's (or site's) objects alive, found on suspicion.

For a few sample objects of a suspected type or allocation site, a breadth-first search walks
referrers back to a root -- a module global, a class attribute, a local of a workload thread's
frame, the event loop -- and names the chain from the root to the container that holds the
sample: ``app.cache._RESPONSES`` (dict), ``app.Registry.entries['sessions']`` (list). The name is
the root's, whichever line put the object there.

Cost is bounded: one scan of the heap per level of the search (``gc.get_referrers`` of the whole
frontier at once -- objgraph's ``find_backref_chain`` scans once per object visited, after a full
collection, with no time limit), at most :data:`MAX_DEPTH` levels and :data:`MAX_FRONTIER`
objects a level, and one deadline for the whole request. It runs in a snapshot, after every
probe has read its series, only when the supervisor asks (a finding is suspected), never from an
allocator hook.

A site's objects are told by where their memory blocks were allocated: every block under the
exact tracer (``tracemalloc.get_object_traceback``), the sampled blocks under the sampled tracer
(``soak.inprocess.probes._sampler.site_of``), so a site's samples are among its sampled objects.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import itertools
import os
import sys
import threading
import time
import tracemalloc
import types
from collections import Counter
from collections.abc import Iterator
from typing import Any

from soak.inprocess.probes.frames import DRIVER_FILES, Frame, FrameFilter
from soak.inprocess.probes.resources import OWN_THREAD_PREFIX
from soak.inprocess.probes.sampled import running_sampler
from soak.inprocess.probes.types import is_own_module, type_name

SEARCH_LIMIT_S = 2.0
"""Time allowed to one holder search request, all its subjects together."""
SAMPLES = 4
"""Sample objects whose chains are searched per subject."""
MAX_DEPTH = 8
MAX_FRONTIER = 256
MODULE_ITEMS = 1000
"""Items of each module-level container scanned before the rest of the heap, for a site's objects."""
MAX_SUBJECTS = 3
"""Subjects searched per request (the most severe findings first)."""

_SOAK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _own_file(filename: str) -> bool:
    return filename in DRIVER_FILES or os.path.dirname(os.path.abspath(filename)).startswith(_SOAK_DIR)


def find_holders(requests: list[dict[str, Any]], limit_s: float = SEARCH_LIMIT_S) -> dict[str, dict[str, Any]]:
    """Holder evidence per requested subject key.

    Each request is ``{"key": ..., "type": "module.qualname"}`` or ``{"key": ..., "frames":
    [[file, line], ...]}`` (a site's traceback, allocation frame first). The evidence names the
    chain most samples share (``held_by``, ``holder_type``, ``root``) and how many samples it holds.
    """
    started = time.perf_counter()
    deadline = started + limit_s
    requests = requests[:MAX_SUBJECTS]
    sites = [request for request in requests if "frames" in request]
    # one scan of the heap finds every site's samples; it may take half the time
    site_samples = _site_samples(sites, started + limit_s / 2) if sites and _site_tracer_running() else None
    found: dict[str, dict[str, Any]] = {}
    for request in requests:
        if "frames" not in request:
            samples: list[tuple[Any, Any]] = _type_samples(request["type"], deadline)
        elif site_samples is None:
            found[request["key"]] = {"held_by": None, "holder_note": "no tracer that can tell a site's objects is running"}
            continue
        else:
            samples = site_samples.get(request["key"], [])
        if not samples:
            found[request["key"]] = {"held_by": None, "holder_note": "none of its objects were found in time"}
            continue
        # a str key of a dict is no referent of it (the collector skips str keys): its
        # container, found while sampling, is where its chain starts
        starts = {id(start): start for start in (sample if container is None else container for sample, container in samples)}
        rooted = {id(chain[-1]): chain for chain in _chains(list(starts.values()), deadline)}
        chains = []
        for sample, container in samples:
            chain = rooted.get(id(sample if container is None else container))
            if chain is not None:
                chains.append(chain if container is None else [*chain, sample])
        del samples, starts, rooted
        found[request["key"]] = _evidence(chains, time.perf_counter() > deadline)
    return found


def _type_samples(name: str, deadline: float) -> list[tuple[Any, None]]:
    """A few live objects of the type called ``name``, the newest first (the heap's tail: what
    leaked lately), as many as are found by ``deadline``."""
    objects = gc.get_objects()
    try:
        names: dict[type, str] = {}
        matches = []
        for scanned, obj in enumerate(reversed(objects)):
            if scanned % 4096 == 0 and time.perf_counter() > deadline:
                break
            cls = type(obj)
            label = names.get(cls)
            if label is None:
                label = names[cls] = type_name(cls)
            if label == name:
                matches.append(obj)
                if len(matches) >= SAMPLES * 8:
                    break
        return [(obj, None) for obj in matches[:: max(1, len(matches) // SAMPLES)][:SAMPLES]]
    finally:
        del objects


def _site_samples(requests: list[dict[str, Any]], deadline: float) -> dict[str, list[tuple[Any, Any]]]:
    """A few live objects allocated at each requested site (by its traceback, as the tracer
    reports it), each with the container it was found in (None for a gc-tracked object, found by
    itself), as many as one scan of the heap finds by ``deadline``."""
    wanted = {tuple((str(file), int(line)) for file, line in request["frames"]): request["key"] for request in requests}
    lines = {frames[0] for frames in wanted}
    frame_filter = FrameFilter()
    found: dict[str, list[tuple[Any, Any]]] = {key: [] for key in wanted.values()}
    missing = len(found)
    taken: set[int] = set()
    objects = gc.get_objects()
    try:
        # The containers that module globals name first, the latest imported module first (the
        # workload's): most leaks are held there, and an untracked object (a str, bytes) is
        # found only through its container. Then the whole heap, oldest first.
        for scanned, obj in enumerate(itertools.chain(_module_containers(), objects)):
            if scanned % 256 == 0 and time.perf_counter() > deadline:
                break
            for candidate, container in _with_untracked(obj):
                raw = _allocation_frames(candidate)
                if not raw or raw[0] not in lines or id(candidate) in taken:
                    continue
                key = wanted.get(frame_filter.workload_frames(raw))
                if key is not None and len(found[key]) < SAMPLES:
                    found[key].append((candidate, container))
                    taken.add(id(candidate))
                    missing -= len(found[key]) == SAMPLES
            if not missing:
                break
        return found
    finally:
        del objects


def _module_containers() -> Iterator[Any]:
    modules: list[object] = list(sys.modules.values())  # anything may be put there, not only modules
    for module in reversed(modules):
        if isinstance(module, types.ModuleType) and not is_own_module(module.__name__):
            for value in list(vars(module).values()):
                if isinstance(value, (dict, list, set, collections.deque)) and value is not sys.modules:
                    yield value
                    # and the objects it holds, whose own fields may be the site's (a str, bytes)
                    items = value.values() if isinstance(value, dict) else value
                    try:
                        held = list(itertools.islice(items, MODULE_ITEMS))
                    except RuntimeError:  # changed size meanwhile (another thread)
                        continue
                    yield from (item for item in held if gc.is_tracked(item))


def _site_tracer_running() -> bool:
    return running_sampler() is not None or tracemalloc.is_tracing()


def _allocation_frames(obj: Any) -> tuple[Frame, ...] | None:
    """Where the running tracer saw ``obj``'s memory block allocated, allocation frame first, as
    it reports a site's frames: the sampled tracer's sample (None unless that block is sampled),
    else tracemalloc's trace. The sampled tracer first: when it runs, it is leaksoak's tracer,
    whatever a workload does with tracemalloc."""
    sampler = running_sampler()
    if sampler is not None:
        return sampler.site_of(obj)  # type: ignore[no-any-return]
    if not tracemalloc.is_tracing():
        return None
    # tracemalloc's private reader skips building a Traceback, as soak.inprocess.probes.exact does for the traces
    reader = getattr(tracemalloc, "_get_object_traceback", None)
    if reader is not None:
        return reader(obj)  # type: ignore[no-any-return]
    traceback = tracemalloc.get_object_traceback(obj)
    return None if traceback is None else tuple((f.filename, f.lineno) for f in reversed(traceback))


def _with_untracked(obj: Any) -> Iterator[tuple[Any, Any]]:
    """``obj`` (with no container), then the untracked objects it holds (with ``obj``): its
    referents, and a dict's keys, which the collector does not visit when they are all str."""
    yield obj, None
    for referent in gc.get_referents(obj):
        if not gc.is_tracked(referent):
            yield referent, obj
    if isinstance(obj, dict):
        for key in list(obj):
            if not gc.is_tracked(key):
                yield key, obj


class _Roots:
    """Which objects a chain may end at, read once per search."""

    def __init__(self) -> None:
        modules: list[object] = list(sys.modules.values())  # anything may be put there, not only modules
        self.modules = {id(module.__dict__): module for module in modules
                        if isinstance(module, types.ModuleType) and not is_own_module(module.__name__)}
        own_threads = {thread.ident for thread in threading.enumerate() if thread.name.startswith(OWN_THREAD_PREFIX)}
        own_threads.add(threading.get_ident())
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        self.thread_frames: dict[int, str] = {}
        self.locals: dict[int, types.FrameType] = {}
        """The frame of each object a workload thread's running frame has as a local: the
        collector does not see a running frame's locals, so they are found from the frames."""
        for ident, frame in sys._current_frames().items():
            if ident in own_threads:
                continue
            walker: types.FrameType | None = frame
            while walker is not None:
                self.thread_frames[id(walker)] = names.get(ident, str(ident))
                if not _own_file(walker.f_code.co_filename):
                    for value in walker.f_locals.values():
                        self.locals.setdefault(id(value), walker)
                walker = walker.f_back

    def root(self, referrer: Any, child: Any) -> str | None:
        """The root's kind when ``referrer`` is one that holds ``child``, else None."""
        if isinstance(referrer, types.ModuleType) and id(referrer.__dict__) in self.modules and child is referrer.__dict__:
            return "module global"
        if isinstance(referrer, type) and not is_own_module(referrer.__module__) and child is _type_dict(referrer):
            return "class attribute"
        if isinstance(referrer, types.FrameType) and id(referrer) in self.thread_frames:
            if any(value is child for value in referrer.f_locals.values()):
                return "thread frame"
        if isinstance(referrer, asyncio.AbstractEventLoop):
            return "event loop"
        return None

    def ignored(self, referrer: Any) -> bool:
        if isinstance(referrer, types.FrameType):
            return _own_file(referrer.f_code.co_filename)
        if isinstance(referrer, type):
            return is_own_module(referrer.__module__)
        return not isinstance(referrer, (dict, list, tuple)) and is_own_module(type(referrer).__module__)


def _type_dict(cls: type) -> Any:
    for referent in gc.get_referents(cls):
        if isinstance(referent, dict) and referent.get("__module__", None) == cls.__dict__.get("__module__"):
            return referent
    return None


def _chains(samples: list[Any], deadline: float) -> list[list[Any]]:
    """[root, ..., sample] for each sample a root is found for in time (at most one each).

    One breadth-first search from all the samples at once: a level costs one scan of the heap
    (``gc.get_referrers`` of the whole frontier), however many samples there are.
    """
    roots = _Roots()
    down: dict[int, tuple[Any, list[Any]]] = {}
    """Each object reached, with the objects of the level below that it holds."""
    wanted_samples = {id(sample) for sample in samples}
    chains: dict[int, list[Any]] = {}
    frontier: list[Any] = list(samples)
    mine: set[int] = {id(down), id(chains), id(samples), id(wanted_samples), id(roots.__dict__), id(roots.modules),
                      id(roots.thread_frames), id(roots.locals)}
    for _ in range(MAX_DEPTH):
        if not frontier or len(chains) == len(wanted_samples) or time.perf_counter() > deadline:
            break
        found: list[Any] = []
        for obj in frontier:
            frame = roots.locals.get(id(obj))
            if frame is not None and id(frame) not in down:
                down[id(frame)] = (frame, [obj])
                found.append(frame)
        mine.add(id(frontier))
        own: types.FrameType | None = sys._getframe()
        while own is not None:
            mine.add(id(own))
            own = own.f_back
        referrers = gc.get_referrers(*frontier)
        mine.add(id(referrers))
        wanted = {id(obj) for obj in frontier}
        mine.add(id(wanted))
        nearest: list[Any] = []
        for referrer in referrers:
            if id(referrer) in mine or id(referrer) in down or id(referrer) in wanted_samples or roots.ignored(referrer):
                continue
            children = [c for c in gc.get_referents(referrer) if id(c) in wanted]
            if not children:
                continue
            down[id(referrer)] = (referrer, children)
            if any(roots.root(referrer, child) is not None for child in children):
                found.append(referrer)
            elif len(nearest) < MAX_FRONTIER:
                nearest.append(referrer)
        del referrers
        for root in found:
            for chain in _paths_down(root, down, wanted_samples):
                chains.setdefault(id(chain[-1]), chain)
        frontier = nearest
    return list(chains.values())


def _paths_down(root: Any, down: dict[int, tuple[Any, list[Any]]], samples: set[int]) -> Iterator[list[Any]]:
    """Every path from ``root`` down to a sample, through what the search reached."""
    stack: list[list[Any]] = [[root]]
    while stack:
        path = stack.pop()
        last = path[-1]
        if id(last) in samples and len(path) > 1:
            yield path
            continue
        for child in down.get(id(last), (None, []))[1]:
            if id(child) in samples or id(child) in down:
                stack.append([*path, child])


def describe(chain: list[Any]) -> tuple[str, str, Any, str]:
    """(the root's kind, the holder's name, the holder, the whole path to the sample's container).

    The holder is what the root names: the module global, class attribute or local, followed
    through attributes (``app.state.cache``) but not into a container's items, so that every
    sample in one cache has the same holder: ``app.cache._RESPONSES``, with the path
    ``app.cache._RESPONSES[6880].body``.
    """
    root = chain[0]
    roots = _Roots()
    kind = roots.root(root, chain[1]) or "?"
    if isinstance(root, types.ModuleType):
        name = root.__name__
    elif isinstance(root, type):
        name = f"{root.__module__}.{root.__qualname__}"
    elif isinstance(root, types.FrameType):
        name = f"{root.f_code.co_name}() in thread '{roots.thread_frames.get(id(root), '?')}'"
    else:
        name = f"the event loop ({type(root).__qualname__})"
    holder, held_by, named = chain[1], name, True
    for index in range(len(chain) - 2):
        step = _step(chain, index)
        name += step
        if named and step.startswith("["):
            named = False
        if named:
            held_by, holder = name, chain[index + 1]
    return kind, held_by, holder, name


def _step(chain: list[Any], index: int) -> str:
    """How ``chain[index]`` refers to the next object: ``.name`` (an attribute, a global, a local)
    or an item: ``['key']``, ``[3]``, ``[<a key>]``, ``[<type>]``."""
    holder, child = chain[index], chain[index + 1]
    if isinstance(holder, (types.ModuleType, type)) and isinstance(child, dict):
        return ""  # its namespace: the key follows
    if isinstance(holder, dict):
        before = chain[index - 1] if index else None
        namespace = isinstance(before, (types.ModuleType, type)) or getattr(before, "__dict__", None) is holder
        for key, value in _items(holder):
            if value is child:
                return f".{key}" if namespace else f"[{key!r}]"
        return "[<a key>]"
    if isinstance(holder, (list, tuple)):
        for position, value in enumerate(holder):
            if value is child:
                return f"[{position}]"
    if isinstance(holder, types.FrameType):
        for name, value in holder.f_locals.items():
            if value is child:
                return f".{name}"
    if hasattr(holder, "__dict__"):
        if child is holder.__dict__:
            return ""
        for name, value in list(vars(holder).items()):
            if value is child:
                return f".{name}"
    return f"[<{type(child).__qualname__}>]"


def _items(mapping: dict[Any, Any]) -> Iterator[tuple[Any, Any]]:
    try:
        yield from list(mapping.items())
    except RuntimeError:  # changed size: another thread wrote to it
        return


def _evidence(chains: list[list[Any]], timed_out: bool) -> dict[str, Any]:
    if not chains:
        return {"held_by": None, "holder_note": "no root found in time" if timed_out
                else "no root found (a cycle, or held only from C)"}
    described = [describe(chain) for chain in chains]
    (kind, held_by, holder), held = Counter((k, h, id(o)) for k, h, o, _ in described).most_common(1)[0]
    path = next(p for k, h, o, p in described if h == held_by)
    holder_type = next(type(o).__qualname__ for _, h, o, _ in described if h == held_by)
    # the container whose items the samples are: a dict holds its keys and its values, but each
    # list of a list of lists holds its own, though one global names them all
    container, _ = Counter(id(container_of(chain)) for chain, (_, h, _, _) in zip(chains, described, strict=True)
                           if h == held_by).most_common(1)[0]
    return {"held_by": held_by, "holder_type": holder_type, "holder_root": kind, "holder_path": path,
            "holder_samples": held, "holder_searched": len(chains), "holder_container": container}


def container_of(chain: list[Any]) -> Any:
    """The object whose items hold the chain's sample: the last one the chain steps from into
    items (``[...]``, see :func:`_step`), or the holder :func:`describe` names if it never does."""
    for index in range(len(chain) - 2, -1, -1):
        if _steps_into_items(chain, index):
            return chain[index]
    return describe(chain)[2]


def _steps_into_items(chain: list[Any], index: int) -> bool:
    """Whether :func:`_step` from ``chain[index]`` is an item (``[...]``) rather than a name
    (an attribute, a global, a local), decided without looking the key up."""
    holder, child = chain[index], chain[index + 1]
    if isinstance(holder, (types.ModuleType, type)) and isinstance(child, dict):
        return False
    if isinstance(holder, dict):
        before = chain[index - 1] if index else None
        return not (isinstance(before, (types.ModuleType, type)) or getattr(before, "__dict__", None) is holder)
    if isinstance(holder, (list, tuple)):
        return True
    if isinstance(holder, types.FrameType):
        return not any(value is child for value in holder.f_locals.values())
    if hasattr(holder, "__dict__"):
        return not (child is holder.__dict__ or any(value is child for value in list(vars(holder).values())))
    return True
