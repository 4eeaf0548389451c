"""``soak watch --pid MASTER`` follows a service's process tree: real gunicorn (pre-fork) and
uvicorn (spawned) servers on 127.0.0.1 under ``python -m soak.agent -- COMMAND``, driven by real
HTTP requests while the watch runs.

Each worker with an agent is a run of its own, judged on its own series; the master's report,
verdict and exit code judge them together: the leak in the workers' shared handler is one finding
that says how many workers show it. A worker the server recycles ends its own run and is an event
of the master's; its successor is picked up."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, run_soak, soak_command
from prometheus_client.parser import text_string_to_metric_families
from servers import ASGI_LEAK_LINE, LEAK_LINE, Served, loading

from soak.supervisor.metrics import max_series

pytestmark = pytest.mark.skipif(not Path("/proc").exists(), reason="process trees are read from /proc")


def watch(server: Served, db: Path, *args: str, duration: str = "20s", by: tuple[str, ...] = ()) -> tuple[int, dict[str, Any]]:
    """``soak watch`` of the server's master (``by``: how to name it; by default its pid)."""
    result = run_soak("watch", *(by or ("--pid", str(server.proc.pid))), "--socket", str(server.folder / "agent.sock"),
                      "--db", str(db), "--duration", duration, "--interval", "0.5s", "--format", "json", "-q", *args,
                      timeout=240)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    report: dict[str, Any] = result.json()
    return result.returncode, report


def events(db: Path, run_id: int) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT kind, message FROM events WHERE run_id = ? ORDER BY id", [run_id]).fetchall()


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def test_a_leak_in_both_gunicorn_workers_is_one_finding_at_the_handler_line_in_2_of_2(tmp_path: Path, served: list[Served]) -> None:
    port = free_port()
    server = Served(tmp_path, ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi_app:app"], port)
    served.append(server)
    workers = {w.pid for w in server.workers(2)}
    db, metrics_port = tmp_path / "soak.db", free_port()
    with loading(server.get, "/leak"):
        watching = subprocess.Popen(
            [*soak_command(), "watch", "--pid", str(server.proc.pid), "--socket", str(server.folder / "agent.sock"),
             "--db", str(db), "--duration", "30s", "--interval", "0.5s", "--format", "json", "-q",
             "--metrics-port", str(metrics_port), "--metrics-top", "3"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline, series = time.monotonic() + 25, []
            while time.monotonic() < deadline:  # until the tree's combined view names the leak in both workers
                time.sleep(1)
                try:
                    series = scrape(metrics_port)
                except OSError:
                    continue
                if any(name == "leaksoak_finding_processes" and value == 2 for name, _, value in series):
                    break
            stdout, stderr = watching.communicate(timeout=240)
        finally:
            if watching.poll() is None:
                watching.kill()
                watching.wait()
    assert watching.returncode == 1, stdout + stderr
    report = json.loads(stdout)
    # /metrics: the tree's processes one by one (bounded slots) and combined (a finding in 2 processes)
    assert [value for name, _, value in series if name == "leaksoak_tree_processes"] == [3.0], series
    slots = {labels["process"] for name, labels, _ in series if name == "leaksoak_tree_process_memory_bytes"}
    assert slots == {"root", "1", "2"}, slots
    assert len(series) <= max_series(3, tree=True)
    assert report["verdict"] == "leak", json.dumps(report["processes"])
    processes = {p["pid"]: p for p in report["processes"]}
    assert processes[server.proc.pid]["root"] is True and workers <= set(processes), (workers, processes)
    for pid in workers:  # each worker judged on its own series: each leaks
        assert processes[pid]["verdict"] == "leak" and processes[pid]["status"] == "completed", processes[pid]
    top = report["tree_findings"][0]
    assert top["where"]["file"].endswith("wsgi_app.py") and top["where"]["line"] == LEAK_LINE, top
    assert top["verdict"] == "leak" and top["processes"] == 2 and top["watched"] == 3
    assert len(top["growth_bytes_per_hour_each"]) == 2 and all(rate > 0 for rate in top["growth_bytes_per_hour_each"])
    assert server.get("/ok") is not None  # it serves on, untouched
    text = run_soak("report", "--db", str(db)).stdout  # the text report of the master's run: the tree judged together
    assert f"wsgi_app.py:{LEAK_LINE} in app, in 2 of 3 processes" in text and "verdict: LEAK" in text, text


def test_the_same_gunicorn_service_on_a_path_that_does_not_leak_is_clean(tmp_path: Path, served: list[Served]) -> None:
    port = free_port()
    server = Served(tmp_path, ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi_app:app"], port)
    served.append(server)
    workers = {w.pid for w in server.workers(2)}
    server.load("/ok", 200)  # past the first requests' one-time allocations
    with loading(server.get, "/ok"):
        # by --match: the workers have the master's command line, and the master, their parent, is watched
        code, report = watch(server, tmp_path / "soak.db", by=("--match", f"gunicorn .*127.0.0.1:{port}"))
    assert report["run"]["target"].startswith("match:")
    assert {p["pid"] for p in report["processes"] if p["root"]} == {server.proc.pid}
    assert workers <= {p["pid"] for p in report["processes"]}
    assert code == 0 and report["verdict"] == "clean", report["tree_findings"]
    assert not [t for t in report["tree_findings"] if t["verdict"] == "leak"]


def test_a_worker_recycled_mid_watch_is_an_event_and_its_successor_is_picked_up(tmp_path: Path, served: list[Served]) -> None:
    port = free_port()
    server = Served(tmp_path, ["gunicorn", "-w", "1", "--max-requests", "300", "-b", f"127.0.0.1:{port}", "wsgi_app:app"], port)
    served.append(server)
    first = server.workers(1)[0].pid
    db = tmp_path / "soak.db"
    with loading(server.get, "/leak", pause_s=0.01):
        code, report = watch(server, db, duration="25s")
    # the run neither ends nor fails: it completes its duration (each short-lived worker's own
    # series may be too short to judge, so its verdict is not asserted here)
    assert report["run"]["status"] == "completed" and report["run"]["duration_s"] >= 24, report["run"]
    workers = [p for p in report["processes"] if not p["root"]]
    assert first in {p["pid"] for p in workers} and len(workers) >= 2, workers  # the successor was picked up
    assert all(p["status"] == "completed" for p in workers), workers
    kinds = [kind for kind, _ in events(db, report["run"]["id"])]
    assert "process_exit" in kinds and kinds.count("process_start") >= 2, kinds


def test_a_leak_in_both_spawned_uvicorn_workers_is_pinned_to_the_endpoint_line(tmp_path: Path, served: list[Served]) -> None:
    port = free_port()
    server = Served(tmp_path, ["uvicorn", "--workers", "2", "--host", "127.0.0.1", "--port", str(port), "asgi_app:app"], port)
    served.append(server)
    workers = {w.pid for w in server.workers(2)}
    with loading(server.get, "/leak"):
        code, report = watch(server, tmp_path / "soak.db")
    assert code == 1 and report["verdict"] == "leak"
    assert workers <= {p["pid"] for p in report["processes"]}
    top = report["tree_findings"][0]
    assert top["where"]["file"].endswith("asgi_app.py") and top["where"]["line"] == ASGI_LEAK_LINE, top
    assert top["processes"] >= 1
