"""The sampled tracer's C extension (``soak.inprocess.probes._sampler``) on its own: sampling, estimates, edge cases.

Each test leaves the tracer stopped. `tests/c/valgrind.sh` runs this file under valgrind memcheck.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import tracemalloc
from collections.abc import Iterator

import pytest

from soak.inprocess.probes.sampled import sampled_unavailable

if sampled_unavailable() is not None:  # pragma: no cover - the extension is built by pip install
    pytest.fail(f"the sampled tracer's extension did not load: {sampled_unavailable()}", pytrace=False)

from soak.inprocess.probes import _sampler  # noqa: E402

MEM, OBJ = 0, 1
HERE = os.path.abspath(__file__)


@pytest.fixture(autouse=True)
def stopped() -> Iterator[None]:
    _sampler.stop()
    yield
    _sampler.stop()
    assert _sampler.is_tracing() is False


def estimates_here(sites: list[tuple[tuple[tuple[str, int], ...], float, float, int]], function_line: int) -> tuple[float, float, int]:
    """Summed (bytes, blocks, samples) of the stacks whose allocation frame is this file's line."""
    total = [0.0, 0.0, 0]
    for frames, size, count, samples in sites:
        if frames and frames[0] == (HERE, function_line):
            total[0] += size
            total[1] += count
            total[2] += samples
    return total[0], total[1], int(total[2])


def line_of(marker: str) -> int:
    with open(HERE) as handle:
        for number, line in enumerate(handle, 1):
            if line.rstrip().endswith(f"# {marker}") and "line_of(" not in line:
                return number
    raise AssertionError(marker)


def keep_blocks(n: int, size: int) -> list[bytes]:
    return [bytes(size) for _ in range(n)]  # KEEP


def test_estimates_are_unbiased_and_match_known_sizes() -> None:
    _sampler._seed(1)
    _sampler.start(interval=4096, frames=10)
    kept = keep_blocks(20_000, 1000)
    sites, stats = _sampler.collect()
    exact = sys.getsizeof(kept[0]) * len(kept)
    size, count, samples = estimates_here(sites, line_of("KEEP"))
    # 20 MB at 4 KiB: about 4,900 samples, a relative standard error of 1.4%
    assert samples > 3000
    assert abs(size - exact) / exact < 0.08, (size, exact)
    assert abs(count - len(kept)) / len(kept) < 0.08, (count, len(kept))
    assert stats["live_samples"] >= samples and stats["dropped"] == 0
    assert _sampler._self_check() is None
    del kept
    sites, _ = _sampler.collect()
    assert estimates_here(sites, line_of("KEEP"))[2] == 0  # every sampled block's free was seen
    assert _sampler._self_check() is None


def test_estimates_agree_with_tracemalloc_in_the_same_process() -> None:
    """Both tracers see the same allocations: ours chains over tracemalloc's hooks."""
    tracemalloc.start(1)
    try:
        _sampler._seed(2)
        _sampler.start(interval=8192, frames=1)
        kept = [{"id": i, "name": f"user-{i}"} for i in range(100_000)]  # DICTS
        sites, _ = _sampler.collect()
        snapshot = tracemalloc.take_snapshot()
    finally:
        _sampler.stop()
        tracemalloc.stop()
    line = line_of("DICTS")
    exact = sum(stat.size for stat in snapshot.statistics("lineno") if stat.traceback[0].lineno == line
                and stat.traceback[0].filename == HERE)
    size, _, _ = estimates_here(sites, line)
    assert exact > 10_000_000
    assert abs(size - exact) / exact < 0.1, (size, exact)
    del kept


def test_start_stop_start_and_bad_arguments() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _sampler.collect()
    with pytest.raises(ValueError, match="interval"):
        _sampler.start(interval=0, frames=10)
    with pytest.raises(ValueError, match="frames"):
        _sampler.start(interval=1024, frames=0)
    with pytest.raises(ValueError, match="frames"):
        _sampler.start(interval=1024, frames=_sampler.MAX_FRAMES + 1)
    for _ in range(3):
        _sampler.start(interval=1024, frames=5)
        assert _sampler._hooks_installed() == (True, True)
        with pytest.raises(RuntimeError, match="already running"):
            _sampler.start(interval=1024, frames=5)
        kept = keep_blocks(2000, 500)
        sites, stats = _sampler.collect()
        assert estimates_here(sites, line_of("KEEP"))[2] > 100
        assert _sampler._self_check() is None
        _sampler.stop()
        assert _sampler._hooks_installed() == (False, False)
        assert _sampler.stats()["live_samples"] == 0 and _sampler.stats()["stacks"] == 0
        del kept
    _sampler.stop()  # a second stop is harmless


def test_untraced_behaviour_unchanged_after_stop() -> None:
    _sampler.start(interval=64, frames=10)
    kept = keep_blocks(1000, 100)
    _sampler.stop()
    del kept  # blocks sampled before stop are freed after it: nothing to find, nothing to break
    assert _sampler._hooks_installed() == (False, False)
    tracemalloc.start(1)  # the interpreter's own allocators are back: tracemalloc works as ever
    try:
        data = [bytes(100) for _ in range(1000)]
        traced, _ = tracemalloc.get_traced_memory()
        assert traced >= 1000 * 100
    finally:
        tracemalloc.stop()
    del data


def test_chained_under_tracemalloc_passes_through_after_stop() -> None:
    """Stopped while tracemalloc's hook sits on top of ours: ours stays in the chain, inactive."""
    _sampler.start(interval=1024, frames=3)
    tracemalloc.start(1)
    try:
        _sampler.stop()
        assert _sampler._hooks_installed() == (False, False)  # tracemalloc's hook is on top
        data = [bytes(100) for _ in range(1000)]
        assert tracemalloc.get_traced_memory()[0] >= 1000 * 100
        assert _sampler.stats()["live_samples"] == 0
    finally:
        tracemalloc.stop()
    # tracemalloc restored what it found: our (inactive) hook; starting again reuses it
    assert _sampler._hooks_installed() == (True, True)
    _sampler.start(interval=1024, frames=3)
    kept = keep_blocks(2000, 500)
    assert estimates_here(_sampler.collect()[0], line_of("KEEP"))[2] > 100
    del data, kept


def test_zero_size_and_huge_allocations() -> None:
    _sampler._seed(4)
    _sampler.start(interval=16, frames=4)
    for domain in (MEM, OBJ):
        # a zero-size block counts as one byte: sampled with p = 1 - e^(-1/16) (about 1,200 of
        # 20,000: a standard error of 2.9%), and weighed 1/p
        zeros = [_sampler._test_alloc(domain, 0) for _ in range(20_000)]
        sampled = [z for z in zeros if _sampler._test_sampled(z) is not None]
        assert all(info is not None and info[0] == 0 for info in map(_sampler._test_sampled, sampled))
        estimate = len(sampled) / -math.expm1(-1 / 16)
        assert abs(estimate - len(zeros)) / len(zeros) < 0.1, (estimate, len(zeros))
        huge = _sampler._test_alloc(domain, 512 * 1024 * 1024)
        assert _sampler._test_sampled(huge) == (512 * 1024 * 1024, 4)  # p = 1 - e^(-8 million)
        for block in zeros:
            _sampler._test_free(domain, block)
        _sampler._test_free(domain, huge)
        assert _sampler._test_sampled(huge) is None
        assert all(_sampler._test_sampled(z) is None for z in zeros)
    _sampler._test_free(MEM, 0)  # free(NULL) passes through
    with pytest.raises(MemoryError):
        _sampler._test_alloc(MEM, sys.maxsize)
    assert _sampler._self_check() is None


def test_realloc_of_a_sampled_block() -> None:
    _sampler._seed(5)  # at interval 1, a block of 10 bytes is sampled with p = 1 - e^-10
    _sampler.start(interval=1, frames=4)
    for domain in (MEM, OBJ):
        block = _sampler._test_alloc(domain, 100)
        assert _sampler._test_sampled(block) == (100, 4)
        grown = _sampler._test_realloc(domain, block, 1_000_000)
        assert grown is not None
        assert _sampler._test_sampled(grown) == (1_000_000, 4)
        if grown != block:
            assert _sampler._test_sampled(block) is None
        shrunk = _sampler._test_realloc(domain, grown, 10)
        assert shrunk is not None
        assert _sampler._test_sampled(shrunk) == (10, 4)
        assert _sampler._test_realloc(domain, shrunk, sys.maxsize) is None  # failed: untouched
        assert _sampler._test_sampled(shrunk) == (10, 4)
        _sampler._test_free(domain, shrunk)
        assert _sampler._test_sampled(shrunk) is None
        fresh = _sampler._test_realloc(domain, 0, 64)  # realloc(NULL) allocates
        assert fresh is not None
        assert _sampler._test_sampled(fresh) == (64, 4)
        _sampler._test_free(domain, fresh)
    assert _sampler._self_check() is None


def test_realloc_resamples_the_new_size() -> None:
    """An unsampled block that grows is sampled as a new allocation of its new size."""
    _sampler.start(interval=1 << 20, frames=4)
    grown = 0
    for _ in range(200):
        block = _sampler._test_alloc(MEM, 8)
        resized = _sampler._test_realloc(MEM, block, 4 << 20)  # p = 1 - e^-4 = 98%
        assert resized is not None
        grown += _sampler._test_sampled(resized) is not None
        _sampler._test_free(MEM, resized)
    assert grown > 180
    assert _sampler.stats()["live_samples"] == 0


def allocate_in_thread(kept: list[bytes], n: int) -> None:
    for _ in range(n):
        kept.append(bytes(300))  # THREADS


def test_many_threads_allocating_at_once() -> None:
    _sampler._seed(3)
    _sampler.start(interval=2048, frames=10)
    keeps: list[list[bytes]] = [[] for _ in range(8)]
    stop = threading.Event()

    def collector() -> None:  # snapshots while the threads allocate and free
        while not stop.is_set():
            _sampler.collect()

    watcher = threading.Thread(target=collector)
    watcher.start()
    threads = [threading.Thread(target=allocate_in_thread, args=(keep, 20_000)) for keep in keeps]
    churn = [threading.Thread(target=lambda: [bytearray(200) for _ in range(50_000)]) for _ in range(4)]
    for thread in threads + churn:
        thread.start()
    for thread in threads + churn:
        thread.join()
    stop.set()
    watcher.join()
    sites, _ = _sampler.collect()
    exact = sum(sys.getsizeof(b) for keep in keeps for b in keep)
    size, _, samples = estimates_here(sites, line_of("THREADS"))
    assert samples > 1000
    assert abs(size - exact) / exact < 0.1, (size, exact)
    assert _sampler._self_check() is None


def test_reentrancy_guard_is_per_thread() -> None:
    """collect() raises the guard in its own thread only: another thread's allocations made
    while (and after) it runs are sampled."""
    _sampler.start(interval=512, frames=10)
    kept: list[bytes] = []
    worker = threading.Thread(target=allocate_in_thread, args=(kept, 30_000))
    worker.start()
    for _ in range(50):
        _sampler.collect()
    worker.join()
    more: list[bytes] = []
    allocate_in_thread(more, 10_000)
    sites, _ = _sampler.collect()
    exact = sum(sys.getsizeof(b) for b in kept + more)
    size, _, _ = estimates_here(sites, line_of("THREADS"))
    assert abs(size - exact) / exact < 0.1, (size, exact)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_of_a_traced_process() -> None:
    _sampler.start(interval=1024, frames=10)
    kept = keep_blocks(5000, 400)
    before = estimates_here(_sampler.collect()[0], line_of("KEEP"))
    pid = os.fork()
    if pid == 0:  # the child: same heap, same samples, a sampler of its own
        code = 1
        try:
            inherited = estimates_here(_sampler.collect()[0], line_of("KEEP"))
            more = keep_blocks(5000, 400)
            after = estimates_here(_sampler.collect()[0], line_of("KEEP"))
            del kept[:2500]
            _sampler.collect()
            ok = (inherited == before and after[2] > before[2] and _sampler._self_check() is None
                  and _sampler.is_tracing())
            _sampler.stop()
            code = 0 if ok and more else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert estimates_here(_sampler.collect()[0], line_of("KEEP")) == before  # the parent is unaffected
    assert _sampler._self_check() is None


def test_many_distinct_stacks_are_compacted_when_freed() -> None:
    _sampler.start(interval=1, frames=2)
    namespace: dict[str, object] = {}
    # 3,000 distinct allocation lines, each sampled (interval 1), then freed
    source = "\n".join(f"x{i} = bytes({i % 50 + 1})" for i in range(3000))
    exec(compile(source, "<generated>", "exec"), namespace)
    assert _sampler.stats()["stacks"] > 3000
    namespace.clear()
    _sampler.collect()
    assert _sampler.stats()["stacks"] < 3000
    assert _sampler._self_check() is None


class Managed:
    """Instances keep their __dict__ in the pre-header from 3.11 (Py_TPFLAGS_MANAGED_DICT)."""

    def __init__(self) -> None:
        self.name = "managed"


class Slotted:
    """A GC type without a managed dict: only the GC head precedes its instances."""

    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name = "slotted"


HAVE_GC, MANAGED_DICT = 1 << 14, 1 << 4


def test_site_of_a_non_gc_object_is_where_its_block_was_allocated() -> None:
    _sampler.start(interval=1, frames=10)  # every block is sampled
    kept = bytes(500)  # SITE_BYTES
    assert not type(kept).__flags__ & HAVE_GC  # the block starts at the object
    site = _sampler.site_of(kept)
    assert site is not None and site[0] == (HERE, line_of("SITE_BYTES"))
    # the frames collect() reports for that block's site, caller included
    reported = [frames for frames, _, _, _ in _sampler.collect()[0] if frames[:1] == site[:1]]
    assert site in reported and len(site) > 1


def test_site_of_a_gc_object_looks_behind_its_gc_head() -> None:
    _sampler.start(interval=1, frames=10)
    slotted = Slotted()  # SITE_SLOTTED
    members = {"a", "b", "c"}  # SITE_SET
    for obj in (slotted, members):
        assert type(obj).__flags__ & HAVE_GC and not type(obj).__flags__ & MANAGED_DICT
    slotted_site, set_site = _sampler.site_of(slotted), _sampler.site_of(members)
    assert slotted_site is not None and slotted_site[0] == (HERE, line_of("SITE_SLOTTED"))
    assert set_site is not None and set_site[0] == (HERE, line_of("SITE_SET"))
    # a str held by nothing else is a block of its own, at its own line
    name = "".join(["sl", "otted"])  # SITE_FIELD
    field_site = _sampler.site_of(name)
    assert field_site is not None and field_site[0] == (HERE, line_of("SITE_FIELD"))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="managed dicts are 3.11's")
def test_site_of_an_object_with_a_managed_dict_looks_behind_its_pre_header() -> None:
    _sampler.start(interval=1, frames=10)
    managed = Managed()  # SITE_MANAGED
    assert type(managed).__flags__ & MANAGED_DICT and type(managed).__flags__ & HAVE_GC
    site = _sampler.site_of(managed)
    assert site is not None and site[0] == (HERE, line_of("SITE_MANAGED"))


def test_site_of_an_unsampled_object_is_none() -> None:
    before = bytes(300)  # allocated before sampling started
    _sampler.start(interval=1 << 40, frames=10)  # nothing is sampled at this interval
    during = [Managed(), Slotted(), bytes(300), {"k": 1}]
    assert [_sampler.site_of(obj) for obj in during] == [None] * len(during)
    _sampler.stop()
    _sampler.start(interval=1, frames=10)
    # objects that no sampled block holds: allocated before start, static, immortal or cached
    for obj in (before, None, int, 5, sys, HERE):
        assert _sampler.site_of(obj) is None, obj
    assert _sampler._self_check() is None


def test_site_of_after_stop_is_none_and_its_answers_are_copies() -> None:
    _sampler.start(interval=1, frames=10)
    kept = [Managed() for _ in range(100)]  # SITE_MANY
    sites = [_sampler.site_of(obj) for obj in kept]
    assert all(site is not None and site[0] == (HERE, line_of("SITE_MANY")) for site in sites)
    _sampler.stop()
    assert all(_sampler.site_of(obj) is None for obj in kept)
    del kept
    assert all(site is not None and site[0][0] == HERE for site in sites)  # still usable
    assert _sampler.site_of(sites[0]) is None


class _Counted:
    pass


def test_count_types_counts_a_list_of_objects_by_type() -> None:
    objects: list[object] = [_Counted() for _ in range(1000)] + [[] for _ in range(3)] + [{}, "s", 1]
    counts = _sampler.count_types(objects)
    assert counts == {_Counted: 1000, list: 3, dict: 1, str: 1, int: 1}
    assert _sampler.count_types(tuple(objects)) == counts


def test_count_types_of_the_heap_agrees_with_counting_in_python() -> None:
    import gc
    from collections import Counter

    # many types: the table grows past its first size, several times
    kinds = [type(f"Kind{i}", (), {}) for i in range(2000)]
    kept = [kind() for kind in kinds for _ in range(3)]
    objects = gc.get_objects()
    try:
        assert _sampler.count_types(objects) == dict(Counter(map(type, objects)))
        assert all(_sampler.count_types(objects)[kind] == 3 for kind in kinds)
    finally:
        del objects, kept


def test_count_types_of_nothing_and_of_wrong_arguments() -> None:
    assert _sampler.count_types([]) == {} and _sampler.count_types(()) == {}
    with pytest.raises(TypeError, match="list or a tuple"):
        _sampler.count_types(iter([1, 2]))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _sampler.count_types()  # type: ignore[call-arg]


def test_count_types_while_sampling_counts_the_same() -> None:
    # its own table is allocated with the raw allocator, which the tracer's hooks never see
    objects: list[object] = [_Counted() for _ in range(5000)]
    _sampler.start(interval=64, frames=4)
    try:
        counts = _sampler.count_types(objects)
    finally:
        _sampler.stop()
    assert counts == {_Counted: 5000}
    assert _sampler._self_check() is None
