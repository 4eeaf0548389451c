"""The native-memory probe (``--native``): allocations of C extensions and the C allocator,
tracked by memray (``Tracker(native_traces=True)``) and read live by a child process
(soak.inprocess.probes.native_reader). Each native site is a bytes series of this probe; its evidence
names the native frames, the object that allocated and the workload's Python frames above it.

Only memory memray's default hooks see is tracked: ``malloc`` and its family, ``mmap``, called
through an object's call table (ctypes' calls of libc's allocator are routed through one: see
soak.inprocess.probes.ctypes_allocators). What
an extension takes from pymalloc (``PyObject_Malloc`` of small blocks) shows only as the arenas
pymalloc maps for it; the Python tracer sees those blocks.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any, cast

from soak.inprocess.probes.ctypes_allocators import route_ctypes_allocators, unroute_ctypes_allocators
from soak.inprocess.probes.native_reader import READER_MAIN
from soak.inprocess.probes.probe import FindingKind, ProbeResult, Reading

START_TIMEOUT_S = 60.0
"""How long the reader may take to connect (it retries every 0.5 s) and to read the header."""
SNAPSHOT_TIMEOUT_S = 300.0


class NativeUnavailable(RuntimeError):
    """Native tracking cannot start here; the message says why."""


def native_unavailable() -> str | None:
    """Why ``--native`` cannot run in this interpreter, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "native tracking reads /proc and ELF objects: Linux only"
    try:
        import elftools  # noqa: F401
        import memray  # noqa: F401
    except ImportError as exc:
        # an agent-only install (pip install --no-deps leaksoak) has neither
        return f"cannot import {exc.name}: --native needs memray and pyelftools (pip install memray pyelftools)"
    return None


class NativeProbe:
    name = "native"
    kind: FindingKind = "native"

    def __init__(self, frames: int = 10) -> None:
        self.frames = frames
        self._tracker: Any = None
        self._reader: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._routed = False
        """Whether this probe routed ctypes' allocators (soak.inprocess.probes.ctypes_allocators), to undo at stop."""

    def start(self) -> None:
        """Start memray's tracker and the reader; raise NativeUnavailable if they cannot start."""
        reason = native_unavailable()
        if reason is not None:
            raise NativeUnavailable(reason)
        import memray

        # ctypes' calls of libc's malloc go through soak.inprocess.probes._ctypes_allocators, where memray sees them
        # (the worker routes them earlier, before the target is imported)
        self._routed = route_ctypes_allocators()
        port = _free_port()
        # The reader must exist before the tracker: memray's tracker waits for its one client.
        reader = subprocess.Popen(
            [sys.executable, "-c", READER_MAIN, str(port), str(self.frames)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
        )
        connected = threading.Event()
        threading.Thread(target=_unblock_if_reader_dies, args=(reader, port, connected),
                         name="soak-native-start", daemon=True).start()
        try:
            tracker = memray.Tracker(destination=memray.SocketDestination(server_port=port),
                                     native_traces=True, follow_fork=False)
            tracker.__enter__()
        except Exception as exc:
            reader.kill()
            self._unroute()
            raise NativeUnavailable(f"memray's tracker did not start: {exc}") from exc
        finally:
            connected.set()
        assert reader.stdout is not None
        ready = _read_line(reader.stdout, START_TIMEOUT_S)
        if ready is None or not ready.get("ready"):
            tracker.__exit__(None, None, None)
            reader.kill()
            self._unroute()
            raise NativeUnavailable("memray's reader did not connect (see its error above)")
        self._tracker, self._reader = tracker, reader

    def collect(self) -> ProbeResult:
        reader = self._reader
        if reader is None or reader.stdin is None or reader.stdout is None:
            raise RuntimeError("native tracking is not running")
        with self._lock:
            reader.stdin.write(b"snapshot\n")
            reader.stdin.flush()
            message = _read_line(reader.stdout, SNAPSHOT_TIMEOUT_S)
        if message is None:
            raise RuntimeError("memray's reader stopped answering")
        if "error" in message:
            raise RuntimeError(f"memray's reader: {message['error']}")
        readings, evidence = [], {}
        for site in message["sites"]:
            readings.append(Reading(site["series"], "bytes", site["size"]))
            evidence[site["series"]] = {key: site[key] for key in ("object", "symbol", "native", "python", "count")}
        return ProbeResult(readings, evidence)

    def stop(self) -> None:
        tracker, reader = self._tracker, self._reader
        self._tracker = self._reader = None
        if tracker is not None:
            tracker.__exit__(None, None, None)
        self._unroute()
        if reader is not None:
            if reader.stdin is not None:
                reader.stdin.close()
            try:
                reader.wait(5)
            except subprocess.TimeoutExpired:
                reader.kill()


    def _unroute(self) -> None:
        if self._routed:
            unroute_ctypes_allocators()
            self._routed = False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _unblock_if_reader_dies(reader: subprocess.Popen[bytes], port: int, connected: threading.Event) -> None:
    """memray's tracker waits in ``accept`` for its reader; if the reader dies first, or has not
    connected within ``START_TIMEOUT_S``, connect once ourselves so that the tracker returns (and
    is then stopped) instead of waiting forever."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not connected.wait(0.2):
        if time.monotonic() > deadline:
            reader.kill()
        if reader.poll() is not None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    pass
            except OSError:
                pass
            return


def _read_line(stream: IO[bytes], timeout_s: float) -> dict[str, Any] | None:
    """One JSON line from the reader, or None if it closes or says nothing within ``timeout_s``."""
    box: list[bytes] = []
    thread = threading.Thread(target=lambda: box.append(stream.readline()), name="soak-native-read", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not box or not box[0]:
        return None
    return cast("dict[str, Any]", json.loads(box[0]))


def _warn(message: str) -> None:
    print(f"leaksoak: {message}", file=sys.stderr, flush=True)


def native_probe_or_none(enabled: bool, frames: int, warn: Callable[[str], None] = _warn) -> NativeProbe | None:
    """A started native probe when ``enabled``; None (after ``warn(reason)``) when it cannot start."""
    if not enabled:
        return None
    probe = NativeProbe(frames)
    try:
        probe.start()
    except NativeUnavailable as exc:
        warn(f"--native is unavailable ({exc}); native memory is not tracked")
        return None
    return probe

