"""Native memory, end to end: real soaks of workloads whose memory C code allocates (a C library
called through ctypes, libc's malloc through ctypes, numpy's buffers), with and without
``--native``, and ``soak watch`` of a real HTTP service under ``python -m soak.agent --native``."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import INSTALLED_WORKLOADS, TESTS, db_rows, free_port, leak_lines, run_soak

NATIVE = INSTALLED_WORKLOADS / "native"
SHORT = ("--duration", "8s", "--interval", "0.25s", "--format", "json", "-q")


def _workload(name: str) -> str:
    return f"soak.workloads.native.{name}:step"


def _findings(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["kind"] == kind]


def _native_leak_at_its_line(workload: str, db: Path) -> dict[str, Any]:
    """The first finding of a --native soak of ``workload``: a native leak called from one of the
    workload's LEAK lines, which explains the process's growth (no ``process`` finding)."""
    result = run_soak("run", _workload(workload), "--native", "--db", str(db), *SHORT)
    assert result.returncode == 1, result.stdout + result.stderr
    report = result.json()
    native = _findings(report, "native")
    assert native and native[0]["verdict"] == "leak", report["findings"]
    finding = native[0]
    assert finding["call_site"]["file"] == str(NATIVE / f"{workload}.py")
    assert finding["call_site"]["line"] in leak_lines(NATIVE / f"{workload}.py")
    assert finding["growth_bytes_per_hour"] > 100 * 2**20
    assert not _findings(report, "process")
    return finding


def test_a_c_library_leak_through_ctypes_is_a_native_site_at_the_calling_line(db: Path) -> None:
    finding = _native_leak_at_its_line("leaky_ctypes_library", db)
    assert finding["library"].startswith("libretain-")  # the compiled library (libretain-<hash>.so), not the application
    assert finding["where"]["function"] == "make_record"
    text = run_soak("report", "--db", str(db)).stdout
    assert "native memory allocated by make_record in libretain" in text and "called from" in text


def test_without_native_the_same_leak_is_unexplained_process_growth_that_suggests_native(db: Path) -> None:
    result = run_soak("run", _workload("leaky_ctypes_library"), "--db", str(db), *SHORT)
    assert result.returncode == 1, result.stdout + result.stderr
    process = _findings(result.json(), "process")
    assert process and process[0]["resource"] == "unexplained" and process[0]["verdict"] == "leak"
    assert not _findings(result.json(), "native")
    assert "run with --native" in run_soak("report", "--db", str(db)).stdout


def test_libc_malloc_called_through_ctypes_is_a_native_site_at_the_calling_line(db: Path) -> None:
    """ctypes calls malloc through the pointer dlsym returned, which memray's hooks never see; under
    --native the lookup is routed through leaksoak's own malloc (soak.inprocess.probes.ctypes_allocators),
    so the leak is libc's malloc called from the workload's line."""
    finding = _native_leak_at_its_line("leaky_ctypes_malloc", db)
    assert finding["library"] == "libc" and finding["where"]["function"] == "malloc"
    text = run_soak("report", "--db", str(db)).stdout
    assert "native memory allocated by malloc in libc" in text and "leaky_ctypes_malloc.py:" in text
    assert "_ctypes_allocators" not in text  # leaksoak's copy of malloc is not shown as the allocator


def test_without_native_libc_malloc_through_ctypes_is_unexplained_process_growth(db: Path) -> None:
    result = run_soak("run", _workload("leaky_ctypes_malloc"), "--db", str(db), *SHORT)
    assert result.returncode == 1, result.stdout + result.stderr
    [finding] = _findings(result.json(), "process")
    assert finding["resource"] == "unexplained" and finding["evidence"]["native_tracked"] is False
    assert finding["verdict"] == "leak" and not _findings(result.json(), "native")
    assert "run with --native" in run_soak("report", "--db", str(db)).stdout


def test_memory_numpy_allocates_for_the_calling_line_is_attributed_to_numpy(db: Path) -> None:
    result = run_soak("run", _workload("leaky_numpy_buffers"), "--native", "--db", str(db), *SHORT)
    assert result.returncode == 1, result.stdout + result.stderr
    native = _findings(result.json(), "native")
    assert native, result.json()["findings"]
    finding = native[0]
    assert finding["library"] == "numpy" and finding["verdict"] == "leak"
    assert finding["where"]["file"].endswith(".so")  # numpy's compiled core, named by its object
    assert finding["call_site"]["file"] == str(NATIVE / "leaky_numpy_buffers.py")
    assert finding["call_site"]["line"] in leak_lines(NATIVE / "leaky_numpy_buffers.py")
    frames = [frame["function"] for frame in finding["traceback"]]
    assert "full" in frames and "step" in frames  # numpy's Python frame, then the application's


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("workload", ["clean_native_churn", "clean_ctypes_malloc"])
def test_a_clean_native_workload_is_clean(workload: str, native: bool, db: Path) -> None:
    """A C library's records and libc's malloc through ctypes, each freed: under --native memray
    sees every free of what it saw allocated (ctypes' free is routed as its malloc is)."""
    result = run_soak("run", _workload(workload), *(["--native"] if native else []), "--db", str(db), *SHORT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.json()["verdict"] == "clean"
    read = db_rows(db, "SELECT count(*) FROM snapshots WHERE probe_ms LIKE '%\"native\"%'")[0][0]
    assert (read > 0) == native  # the native probe ran at the snapshots, or did not


@pytest.mark.parametrize("name", ["clean_churn", "clean_bounded_lru"])
def test_clean_reference_workloads_stay_clean_with_native(name: str, db: Path) -> None:
    """Python-only churn under native tracking: the interpreter's own mallocs are left to the
    Python tracer, so nothing native is called a leak, and RSS is explained."""
    result = run_soak("run", f"soak.workloads.reference.{name}:step", "--native", "--db", str(db),
                      "--duration", "10s", "--interval", "0.25s", "--format", "json", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.json()["verdict"] == "clean", result.json()["findings"]



def test_watch_reports_native_sites_of_a_service_under_the_agent_with_native(tmp_path: Path, db: Path) -> None:
    script = TESTS / "services" / "native_service.py"
    port, agent_socket = free_port(), tmp_path / "agent" / "agent.sock"
    service = subprocess.Popen(
        [sys.executable, "-m", "soak.agent", "--socket", str(agent_socket), "--native", "--", str(script), str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    stop = threading.Event()
    try:
        assert service.stdout is not None and service.stdout.readline().strip() == "listening", service.stderr

        def load() -> None:
            deadline = time.monotonic() + 40
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/leak", timeout=5).read()
                except OSError:
                    time.sleep(0.05)
                time.sleep(0.005)

        threading.Thread(target=load, daemon=True).start()
        result = run_soak("watch", "--pid", str(service.pid), "--socket", str(agent_socket), "--db", str(db),
                          "--duration", "24s", "--interval", "0.5s", "--format", "json", "-q")
        assert result.returncode == 1, result.stdout + result.stderr
        native = _findings(result.json(), "native")
        assert native, result.json()["findings"]
        assert native[0]["where"]["function"] == "make_record" and native[0]["library"].startswith("libretain")
        assert native[0]["call_site"]["file"] == str(script)
        assert native[0]["call_site"]["line"] in leak_lines(script)
        events = [message for (message,) in db_rows(db, "SELECT message FROM events WHERE kind = 'worker_start'")]
        assert "with native tracking" in events[0]
        # the sampled tracer's own tables (malloc'd by leaksoak's C core) are not the service's
        assert db_rows(db, "SELECT count(*) FROM probe_series WHERE probe = 'native' AND name LIKE '%_sampler%'") == [(0,)]
        assert service.poll() is None  # the service was left running
    finally:
        stop.set()
        service.kill()
        service.wait()
