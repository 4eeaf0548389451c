"""`soak watch` beside a real HTTP service on 127.0.0.1, with and without the agent."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TESTS, db_rows, free_port, leak_lines, metric_families, run_soak, soak_command, verdicts

SERVICE = TESTS / "services" / "http_service.py"
# Snapshots through the agent take ~1 s here: the service runs 4x slower under tracemalloc and
# answers from one of its own threads, on a 2-core machine shared with the load and the watcher.
WATCH = ("--duration", "15s", "--interval", "0.5s", "--format", "json", "-q")



class Service:
    """The test service as a separate process, optionally under the agent, plus a bounded load loop."""

    def __init__(self, tmp: Path, *, agent: bool, port: int | None = None, script: Path = SERVICE) -> None:
        """``script`` takes the port, and the agent's socket when it starts the agent itself."""
        self.port = port or free_port()
        self.socket = tmp / "agent" / "agent.sock"
        command = [sys.executable, str(script), str(self.port)] + ([] if script == SERVICE else [str(self.socket)])
        if agent:
            command = [sys.executable, "-m", "soak.agent", "--socket", str(self.socket), "--frames", "4", "--", *command[1:]]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "listening", self.proc.stderr
        self._stop = threading.Event()
        self.requests = 0

    def load(self, path: str, seconds: float) -> threading.Thread:
        def loop() -> None:
            deadline = time.monotonic() + seconds
            while not self._stop.is_set() and time.monotonic() < deadline and self.requests < 200_000:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5).read()
                    self.requests += 1
                except Exception:  # noqa: BLE001 - restarting, or busy: the load just keeps going
                    time.sleep(0.05)
                time.sleep(0.005)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.close()


def test_agent_pins_the_leaking_endpoint_line(services: list[Service], tmp_path: Path, db: Path) -> None:
    service = Service(tmp_path, agent=True)
    services.append(service)
    assert stat.S_IMODE(service.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(service.socket.parent.stat().st_mode) == 0o700
    service.load("/leak", 30)
    result = run_soak("watch", "--pid", str(service.proc.pid), "--socket", str(service.socket), "--db", str(db), *WATCH)
    assert result.returncode == 1, (result.stdout + result.stderr, db_rows(db, "SELECT kind, message FROM events"))
    report = result.json()
    assert report["verdict"] == "leak" and report["run"]["status"] == "completed"
    first = report["findings"][0]
    assert first["kind"] == "site" and first["where"]["file"] == str(SERVICE)
    assert first["where"]["line"] in leak_lines(SERVICE) and first["where"]["function"] == "Handler.do_GET"
    assert service.proc.poll() is None  # the service was left running
    events = [message for (message,) in db_rows(db, "SELECT message FROM events WHERE kind = 'worker_start'")]
    assert "through its agent" in events[0]


def test_a_failed_agent_snapshot_is_an_event_and_a_lost_connection_is_reconnected(
    services: list[Service], tmp_path: Path, db: Path,
) -> None:
    service = Service(tmp_path, agent=False, script=TESTS / "services" / "faulty_agent_service.py")  # starts its own
    services.append(service)
    service.load("/leak", 30)
    result = run_soak("watch", "--pid", str(service.proc.pid), "--socket", str(service.socket), "--db", str(db), *WATCH)
    events = db_rows(db, "SELECT kind, message FROM events WHERE kind = 'snapshot_failed' ORDER BY t_s")
    assert [kind for kind, _ in events] == ["snapshot_failed"], events
    assert "the agent could not take snapshot 4: snapshot failed: RuntimeError: injected failure" in events[0][1]
    # the dropped connection was made again within the same snapshot: every other snapshot read the heap
    assert db_rows(db, "SELECT count(*) FROM snapshots WHERE tracer IS NULL") == [(0,)]
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.json()["findings"][0]["where"]["function"] == "Handler.do_GET"
    assert service.proc.poll() is None  # the service was left running


def test_without_the_agent_the_process_level_verdict_is_a_leak(services: list[Service], tmp_path: Path, db: Path) -> None:
    service = Service(tmp_path, agent=False)
    services.append(service)
    service.load("/leak", 30)
    result = run_soak("watch", "--pid", str(service.proc.pid), "--db", str(db), *WATCH)
    assert result.returncode == 1, result.stdout + result.stderr
    (finding, *_) = result.json()["findings"]
    assert finding["kind"] == "process" and finding["resource"] == "rss" and finding["verdict"] == "leak"
    assert db_rows(db, "SELECT count(*) FROM site_samples") == [(0,)]
    assert db_rows(db, "SELECT count(*) FROM snapshots WHERE pss IS NOT NULL AND uss IS NOT NULL")[0][0] > 5


def test_clean_endpoint_under_the_same_load_is_clean(services: list[Service], tmp_path: Path, db: Path) -> None:
    service = Service(tmp_path, agent=True)
    services.append(service)
    service.load("/ok", 30)
    result = run_soak("watch", "--pid", str(service.proc.pid), "--socket", str(service.socket), "--db", str(db), *WATCH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.json()["verdict"] == "clean"
    assert service.requests > 100


def test_restart_under_match_is_one_run_with_two_segments(services: list[Service], tmp_path: Path, db: Path) -> None:
    port = free_port()
    first = Service(tmp_path, agent=True, port=port)
    services.append(first)
    pattern = f"http_service.py {port}$"
    watcher = subprocess.Popen(
        [*soak_command(), "watch", "--match", pattern, "--db", str(db), "--duration", "12s", "--interval", "0.25s",
         "--format", "json", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(5)
    seen_before = db_rows(db, "SELECT count(*) FROM snapshots")[0][0]
    first.proc.kill()
    first.proc.wait()
    second = Service(tmp_path, agent=True, port=port)
    services.append(second)
    stdout, stderr = watcher.communicate(timeout=60)
    assert watcher.returncode in (0, 1), stderr
    report = json.loads(stdout)
    assert report["run"]["status"] == "completed"
    assert db_rows(db, "SELECT count(*) FROM runs") == [(1,)]
    segments = dict(db_rows(db, "SELECT segment, count(*) FROM snapshots GROUP BY segment"))
    assert set(segments) == {0, 1} and segments[0] >= seen_before and segments[1] >= 5
    pids = {pid for (pid,) in db_rows(db, "SELECT DISTINCT worker_pid FROM snapshots")}
    assert pids == {first.proc.pid, second.proc.pid}
    (restart,) = db_rows(db, "SELECT message FROM events WHERE kind = 'restart'")
    assert f"pid {first.proc.pid} exited; pid {second.proc.pid}" in restart[0]
    text = run_soak("report", "--db", str(db))
    assert "restart" in text.stdout or f"pid {second.proc.pid}" in text.stdout


def test_metrics_are_served_and_parse(services: list[Service], tmp_path: Path, db: Path) -> None:
    service = Service(tmp_path, agent=True)
    services.append(service)
    service.load("/leak", 30)
    port = free_port()
    watcher = subprocess.Popen(
        [*soak_command(), "watch", "--pid", str(service.proc.pid), "--socket", str(service.socket), "--db", str(db),
         "--duration", "40s", "--interval", "0.25s", "--metrics-port", str(port), "--memory-limit", "4GiB", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        families: dict[str, list[Any]] = {}
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            scraped = metric_families(port)
            if scraped is None:
                continue
            families = scraped
            verdict = verdicts(families)
            until = families.get("leaksoak_seconds_until_memory_limit") or []
            # Findings can come before the RSS slope does (RSS grows in pages and arenas, and
            # analysis now refreshes every 2 snapshots): wait for both, within the deadline.
            if (verdict.get("leak") == 1.0 and families.get("leaksoak_finding_growth_bytes_per_hour")
                    and until and until[0].value < float("inf")):
                break
            time.sleep(0.5)
        assert set(verdict) == {"leak", "suspect", "clean", "inconclusive"} and verdict["leak"] == 1.0
        growth = families["leaksoak_finding_growth_bytes_per_hour"]
        assert 1 <= len(growth) <= 10 and set(growth[0].labels) == {"finding_id"} and growth[0].value > 0
        info = {s.labels["finding_id"]: s.labels for s in families["leaksoak_finding_info"]}
        assert set(info) == {s.labels["finding_id"] for s in growth}
        assert info[growth[0].labels["finding_id"]]["where"].startswith("http_service.py:")
        memory = {s.labels["kind"]: s.value for s in families["leaksoak_process_memory_bytes"]}
        assert memory["rss"] > 1e6 and "pss" in memory
        (until,) = families["leaksoak_seconds_until_memory_limit"]
        assert 0 < until.value < float("inf")
        assert families["leaksoak_snapshot_pause_seconds"][0].value > 0
    finally:
        # Seen what it needed: end the watch as Ctrl-C would, rather than wait out its 40 s.
        if watcher.poll() is None:
            watcher.send_signal(signal.SIGINT)
        watcher.communicate(timeout=60)


def _request(path: Path, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(payload)
        chunks = b""
        while not chunks.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            chunks += chunk
        return chunks


def test_agent_refuses_bad_requests_and_the_service_goes_on(services: list[Service], tmp_path: Path) -> None:
    service = Service(tmp_path, agent=True)
    services.append(service)
    for payload, words in [
        (b"print('hello')\n", b"not JSON"),
        (b'{"v": 1, "type": "exec", "code": "import os"}\n', b"unknown request"),
        (b'{"v": 1, "type": "snapshot", "seq": "x"}\n', b"unknown request"),
        (b'{"v": 2, "type": "hello"}\n', b"protocol version"),
        (b'{"v": 1, "type": "hello", "pad": "' + b"x" * 100_000 + b'"}\n', b"larger than"),
    ]:
        reply = json.loads(_request(service.socket, payload))
        assert reply["type"] == "error" and words.decode() in reply["message"]
    hello = json.loads(_request(service.socket, b'{"v": 1, "type": "hello"}\n'))
    assert hello["type"] == "hello" and hello["pid"] == service.proc.pid
    assert urllib.request.urlopen(f"http://127.0.0.1:{service.port}/ok", timeout=5).read().startswith(b"ok")
    assert service.proc.poll() is None


SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")


@pytest.mark.skipif(os.geteuid() != 0 or SYSTEM_PYTHON is None, reason="needs root, and a python3 another user may run")
def test_agent_refuses_another_user(services: list[Service], tmp_path: Path) -> None:
    service = Service(tmp_path, agent=True)
    services.append(service)
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"try:\n    s.connect({str(service.socket)!r})\nexcept PermissionError:\n    sys.exit(13)\n"
        "sys.exit(0)\n"
    )
    assert SYSTEM_PYTHON is not None
    nobody = subprocess.run([SYSTEM_PYTHON, "-c", probe], user=65534, group=65534, timeout=30, cwd="/")
    assert nobody.returncode == 13  # the 0700 directory and 0600 socket keep other users out
    assert service.proc.poll() is None


def test_agent_handles_a_stale_socket_and_a_second_agent(tmp_path: Path) -> None:
    path = tmp_path / "agent" / "a.sock"
    path.parent.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a crashed service's leftover
    code = (
        "import soak.agent as a, sys\n"
        f"first = a.start({str(path)!r}); assert first is not None\n"
        f"assert a.start({str(path)!r}) is first\n"  # starting twice returns the same agent
        f"other = a.Agent({str(path)!r})\n"
        "try:\n    other.start()\nexcept a.AgentError as e:\n    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "another agent already listens" in result.stdout


def test_agent_in_an_open_directory_steps_aside_without_harm(tmp_path: Path) -> None:
    open_dir = tmp_path / "shared"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    code = f"import soak.agent as a\nassert a.start({str(open_dir / 'a.sock')!r}) is None\nprint('service still running')\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "service still running" in result.stdout
    assert "leaksoak agent not started" in result.stderr and "open to other users" in result.stderr


def test_watch_bad_input_is_exit_2(db: Path) -> None:
    for args, words in [
        ((), "either --pid PID or --match REGEX"),
        (("--pid", "999999999"), "no process with pid"),
        (("--match", "no-such-process-[0-9]{40}"), "no running process matches"),
        (("--match", "(unclosed"), "not a regular expression"),
    ]:
        result = run_soak("watch", *args, "--db", str(db), "--duration", "2s", "--interval", "1s")
        assert result.returncode == 2 and words in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not db.exists()


def test_watch_without_an_interval_takes_one_that_fits_the_duration(db: Path) -> None:
    # As for soak run: a sixtieth of --duration within 0.25-30 s, so a short watch still gets
    # enough snapshots for a verdict (a fixed 30 s gave a 6 s watch a single snapshot).
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        result = run_soak("watch", "--pid", str(sleeper.pid), "--db", str(db), "--duration", "6s", "--tracer", "off",
                          "--format", "json", "-q")
        assert result.returncode in (0, 1), result.stderr
        assert db_rows(db, "SELECT interval_s FROM runs") == [(0.25,)]
        assert result.json()["run"]["snapshots"] >= 15
    finally:
        sleeper.kill()
        sleeper.wait()
