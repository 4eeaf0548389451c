"""ctypes' lookups of the C allocator routed through ``soak.inprocess.probes._ctypes_allocators`` (for ``--native``):
the routed functions allocate and free as libc's do, routing starts and stops, libraries' other
functions and their own allocators are left alone, and memray's tracker sees the routed calls at
their Python line."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from soak.inprocess.probes.ctypes_allocators import (
    ALLOCATORS,
    ctypes_allocators_unavailable,
    is_routed,
    route_ctypes_allocators,
    unroute_ctypes_allocators,
)

if ctypes_allocators_unavailable() is not None:  # pragma: no cover - the extension is built by pip install
    pytest.fail(f"soak.inprocess.probes._ctypes_allocators did not load: {ctypes_allocators_unavailable()}", pytrace=False)

from soak.inprocess.probes import _ctypes_allocators  # noqa: E402

OURS = _ctypes_allocators.addresses()


def address(function: Any) -> int | None:
    return ctypes.cast(function, ctypes.c_void_p).value


@pytest.fixture
def routed() -> Iterator[None]:
    assert route_ctypes_allocators() is True
    try:
        yield
    finally:
        unroute_ctypes_allocators()
        assert not is_routed()


def test_the_routed_functions_allocate_and_free_like_libcs(routed: None) -> None:
    libc = ctypes.CDLL(None)
    malloc, calloc, realloc, free = (cast(Any, f) for f in (libc.malloc, libc.calloc, libc.realloc, libc["free"]))  # attribute and item
    assert {name: address(f) for name, f in zip(ALLOCATORS, (malloc, calloc, realloc, free), strict=True)} == OURS
    assert malloc.__name__ == "malloc" and free.__name__ == "free"
    # as a looked-up function would be: the library's default restype, no argtypes, both settable
    assert malloc.restype is ctypes.c_int and malloc.argtypes is None
    for function in (malloc, calloc, realloc):
        function.restype = ctypes.c_void_p
    malloc.argtypes = [ctypes.c_size_t]
    calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    free.argtypes, free.restype = [ctypes.c_void_p], None
    block = malloc(4096)
    assert block
    ctypes.memset(block, 7, 4096)
    grown = realloc(block, 1 << 20)
    assert grown and ctypes.string_at(grown, 4096) == b"\x07" * 4096  # realloc kept the contents
    zeros = calloc(1000, 8)
    assert zeros and ctypes.string_at(zeros, 8000) == bytes(8000)
    for pointer in (grown, zeros, None):  # free(NULL) too
        free(pointer)


def test_route_and_unroute() -> None:
    before = address(ctypes.CDLL(None).malloc)
    assert before not in OURS.values() and not is_routed()
    assert route_ctypes_allocators() is True
    try:
        assert route_ctypes_allocators() is False and is_routed()  # once
        handed_out = ctypes.CDLL(None).malloc
        assert address(handed_out) == OURS["malloc"]
        assert address(ctypes.CDLL("libc.so.6").free) == OURS["free"]  # libc by its name
        assert address(ctypes.pythonapi.realloc) == OURS["realloc"]  # a PyDLL of the process
    finally:
        unroute_ctypes_allocators()
    assert not is_routed() and address(ctypes.CDLL(None).malloc) == before
    unroute_ctypes_allocators()  # a second time is harmless
    handed_out.restype, handed_out.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    block = handed_out(64)  # a routed pointer works after unrouting
    assert block
    free = ctypes.CDLL(None).free
    free.argtypes = [ctypes.c_void_p]
    free(block)


def test_a_library_with_errno_keeps_its_flags(routed: None) -> None:
    plain, with_errno = ctypes.CDLL(None).malloc, ctypes.CDLL(None, use_errno=True).malloc
    assert address(plain) == address(with_errno) == OURS["malloc"]
    assert with_errno._flags_ & ctypes._FUNCFLAG_USE_ERRNO and not plain._flags_ & ctypes._FUNCFLAG_USE_ERRNO  # type: ignore[attr-defined]


def test_other_functions_and_a_librarys_own_allocator_are_untouched(routed: None, tmp_path: Path) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("needs a C compiler")
    source = tmp_path / "own_malloc.c"
    # a library that defines functions named like libc's allocators, for itself
    source.write_text("#include <stddef.h>\nstatic char pool[64];\n"
                      "void *malloc(size_t n) { (void)n; return pool; }\nvoid free(void *p) { (void)p; }\n"
                      "int answer(void) { return 42; }\n")
    library = tmp_path / "libownmalloc.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    own = ctypes.CDLL(str(library))
    assert address(own.malloc) not in OURS.values() and address(own.free) not in OURS.values()
    assert own.answer() == 42
    libc = ctypes.CDLL(None)
    assert address(libc.memset) not in OURS.values() and address(libc.strlen) not in OURS.values()
    with pytest.raises(AttributeError):
        libc.no_such_function_here  # noqa: B018 - a missing symbol is still an AttributeError
    from soak.workloads.native._build import load_libretain

    assert address(load_libretain().make_record) not in OURS.values()


def test_memray_sees_libcs_malloc_called_through_ctypes_at_its_python_line() -> None:
    """The native probe routes the lookups while it runs: blocks libc's malloc gives through
    ctypes are a site of libc's malloc at the calling line; once freed (through ctypes too),
    they are gone."""
    script = """
import ctypes, json, time
from soak.inprocess.probes.ctypes_allocators import is_routed
from soak.inprocess.probes.native import NativeProbe
probe = NativeProbe(); probe.start()
routed = is_routed()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p; libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.restype = None; libc.free.argtypes = [ctypes.c_void_p]
kept = [libc.malloc(65536) for _ in range(20)]  # the line
def ours(result):
    return {r.series: (r.value, result.evidence[r.series]) for r in result.readings
            if result.evidence[r.series]["python"][0][:2] == ["<string>", 10]}
def until(done):  # memray's records reach the reader within milliseconds, not at once
    deadline = time.monotonic() + 10
    while True:
        result = probe.collect()
        if done(ours(result)) or time.monotonic() > deadline:
            return result
        time.sleep(0.05)
first = until(lambda sites: sum(size for size, _ in sites.values()) >= 20 * 65536)
for block in kept:
    libc.free(block)
second = until(lambda sites: not sites)
probe.stop()
print(json.dumps([routed, is_routed(), ours(first), ours(second)]))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    routed_while_running, routed_after, first, second = json.loads(proc.stdout.strip().splitlines()[-1])
    assert routed_while_running and not routed_after  # the probe routed, and undid it at stop
    [(size, evidence)] = first.values()
    assert size == 20 * 65536 and evidence["count"] == 20
    assert evidence["symbol"] == "malloc" and Path(evidence["object"]).name.startswith("libc")
    assert evidence["native"][0][0] == "malloc" and evidence["native"][0][3] == evidence["object"]  # libc's, not ours
    assert second == {}
