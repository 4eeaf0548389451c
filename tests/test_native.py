"""The parts of native tracking that need no soak: the unexplained-growth rule on series, which
object a native frame belongs to, and the probe itself on this process's real allocations."""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np

from soak.analyzers import Thresholds
from soak.analyzers.unexplained import MIN_GROWTH_BYTES, unexplained_growth
from soak.inprocess.probes.native_reader import LIBC, _defined_functions, object_role
from soak.judging.attribution import APPLICATION, STDLIB, Attributor
from soak.judging.native_attribution import native_attribution, native_library
from soak.model.finding import Frame, ProcessKey
from soak.workloads.native._build import load_libretain

TIMES = np.arange(60) * 0.5
rng = np.random.default_rng(3)
NOISE = rng.normal(0, 20_000, len(TIMES))


def test_rss_growth_the_traced_heap_does_not_hold_is_unexplained() -> None:
    rss = 50e6 + 400_000 * TIMES + NOISE  # 400 kB/s of RSS, none of it traced
    traced = 10e6 + NOISE / 10
    result = unexplained_growth(TIMES, rss, traced, Thresholds(), native_tracked=False)
    [finding] = result.findings
    assert result.verdict == "leak" and finding.key == ProcessKey("unexplained")
    assert finding.evidence["native_tracked"] is False
    assert finding.evidence["explained_slope_bytes_per_s"] < 0.5 * finding.evidence["process_slope_bytes_per_s"]


def test_rss_growth_that_the_traced_heap_grows_with_is_explained() -> None:
    traced = 10e6 + 300_000 * TIMES
    rss = 50e6 + 400_000 * TIMES + NOISE  # a Python leak: RSS grows by its traced bytes and overhead
    result = unexplained_growth(TIMES, rss, traced, Thresholds(), native_tracked=False)
    assert result.findings == [] and result.verdict == "clean"


def test_the_allocator_settling_by_less_than_a_mib_is_not_a_finding() -> None:
    rss = 50e6 + np.minimum(TIMES, 20) * (0.8 * MIN_GROWTH_BYTES / 20)  # 0.8 MiB, then flat
    result = unexplained_growth(TIMES, rss, np.full(len(TIMES), 10e6), Thresholds(), native_tracked=True)
    assert result.findings == []


def test_object_roles() -> None:
    interpreter = os.path.realpath(sys.executable)
    assert object_role(interpreter, interpreter) == "interpreter"
    assert object_role("/usr/lib/libpython3.11.so.1.0", interpreter) == "interpreter"
    assert object_role("/lib/x86_64-linux-gnu/libc.so.6", interpreter) == "runtime"
    assert object_role("/lib/x86_64-linux-gnu/libffi.so.8", interpreter) == "glue"
    assert object_role("/opt/py/lib-dynload/_ctypes.cpython-311-x86_64-linux-gnu.so", interpreter) == "glue"
    assert object_role("/site-packages/numpy/_core/_multiarray_umath.so", interpreter) == "code"
    from soak.inprocess.probes import _sampler  # leaksoak's own C core: its tables are the tracer's overhead

    assert object_role(_sampler.__file__, interpreter) == "own"
    assert object_role("/site-packages/other/_sampler.cpython-311-x86_64-linux-gnu.so", interpreter) == "code"


def test_the_functions_an_object_defines_are_read_from_its_symbol_tables() -> None:
    library = load_libretain()
    path = next(line.split(None, 5)[5].strip() for line in Path("/proc/self/maps").read_text().splitlines()
                if "libretain-" in line)
    names = set(_defined_functions(path))
    assert {"make_record", "release_record"} <= names
    assert "malloc" not in names  # undefined there: libc's
    assert library.make_record is not None


def test_native_libraries_are_named_by_distribution_or_system_library() -> None:
    attributor = Attributor([str(Path(__file__).parent)])
    numpy_core = os.path.join(os.path.dirname(np.__file__), "_core", "_multiarray_umath.so")
    assert native_library(numpy_core, attributor) == "numpy"
    ctypes_module = ctypes.__file__  # stdlib
    dynload = os.path.join(sysconfig.get_paths()["platstdlib"], "lib-dynload", "_ctypes.so")
    assert native_library(dynload, attributor) == STDLIB and attributor.library(ctypes_module) == STDLIB
    assert native_library("/lib/x86_64-linux-gnu/libc.so.6", attributor) == "libc"
    assert native_library(str(Path(__file__).parent / "libmine.so"), attributor) == APPLICATION
    assert native_library(LIBC, attributor) == "libc"


def test_a_top_level_extension_module_maps_to_its_distribution() -> None:
    """``_yaml`` is PyYAML's top-level name; as a top-level extension file it is PyYAML's too."""
    attributor = Attributor()
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    path = os.path.join(sysconfig.get_paths()["platlib"], f"_yaml{suffix}")
    assert attributor.library(path) == "PyYAML"


def test_native_attribution_takes_the_first_application_line_as_the_call_site() -> None:
    attributor = Attributor(["/app"])
    numpy_py = os.path.join(os.path.dirname(np.__file__), "_core", "numeric.py")
    evidence = {
        "object": os.path.join(os.path.dirname(np.__file__), "_core", "_multiarray_umath.so"),
        "native": [["default_malloc", "<unknown>", 0, "/x/_multiarray_umath.so"], ["array_empty", "src/ctors.c", 12, None]],
        "python": [[numpy_py, 232, "full"], ["/app/handlers.py", 7, "handle"]],
    }
    library, call_site, traceback = native_attribution(evidence, attributor)
    assert library == "numpy"
    assert call_site == Frame("/app/handlers.py", 7, "handle")
    assert traceback[0] == Frame("/x/_multiarray_umath.so", 0, "default_malloc")
    assert traceback[1] == Frame("src/ctors.c", 12, "array_empty")
    assert [f.function for f in traceback[2:]] == ["full", "handle"]


def test_the_probe_sees_a_c_library_allocation_at_its_python_line() -> None:
    """The probe in a real process: records kept by a C library are a site at the calling line;
    released ones are gone from a later snapshot (memray's records reach the reader within a few
    milliseconds: a snapshot is of what it has received, so each side is polled for)."""
    script = """
import json, sys, time
from soak.inprocess.probes.native import NativeProbe
from soak.workloads.native._build import load_libretain
lib = load_libretain()
probe = NativeProbe(); probe.start()
kept = [lib.make_record(65536, 1) for _ in range(20)]  # the line
def kept_bytes(result):
    return sum(r.value for r in result.readings if result.evidence[r.series]["symbol"] == "make_record")
def poll(until):
    deadline = time.monotonic() + 10
    while True:
        result = probe.collect()
        if until(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.05)
first = poll(lambda result: kept_bytes(result) >= 20 * 65536)
for record in kept:
    lib.release_record(record)
second = poll(lambda result: kept_bytes(result) == 0)
probe.stop()
def ours(result):
    return {r.series: (r.value, result.evidence[r.series]) for r in result.readings if result.evidence[r.series]["symbol"] == "make_record"}
print(json.dumps([ours(first), ours(second)]))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    first, second = json.loads(proc.stdout.strip().splitlines()[-1])
    [(size, evidence)] = first.values()
    assert size == 20 * 65536 and evidence["count"] == 20
    assert evidence["python"][0][0] == "<string>" and evidence["python"][0][1] == 7
    assert os.path.basename(evidence["object"]).startswith("libretain-")
    assert second == {}
