"""Sidecar benchmark: `soak watch` for 60 s beside a real HTTP service on 127.0.0.1.

Three runs, each with a bounded load loop against the test service (tests/services/http_service.py):
the leaky endpoint under the agent (is its line pinned?), the same without the agent (is the
process-level verdict a leak?), and the clean endpoint under the agent (is it clean?). Prints
verdicts, the first finding, snapshot counts and pauses, and the request rate the service kept.

    python benchmarks/sidecar.py [--duration 60s] [--interval 1s]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

SERVICE = Path(__file__).resolve().parent.parent / "tests" / "services" / "http_service.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(path: str, agent: bool, duration: str, interval: str, tmp: str) -> None:
    port = free_port()
    sock = os.path.join(tmp, f"agent-{port}", "a.sock")
    command = [sys.executable, str(SERVICE), str(port)]
    if agent:
        command = [sys.executable, "-m", "soak.agent", "--socket", sock, "--", *command[1:]]
    service = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert service.stdout is not None and service.stdout.readline().strip() == "listening"
    stop = threading.Event()
    served = [0]

    def load() -> None:
        while not stop.is_set() and served[0] < 1_000_000:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read()
                served[0] += 1
            except Exception:  # noqa: BLE001
                time.sleep(0.05)
            time.sleep(0.005)

    threading.Thread(target=load, daemon=True).start()
    db = os.path.join(tmp, f"sidecar-{port}.db")
    args = [sys.executable, "-m", "soak", "watch", "--pid", str(service.pid), "--db", db, "--duration", duration,
            "--interval", interval, "--format", "json", "-q"]
    if agent:
        args += ["--socket", sock]
    started = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    stop.set()
    service.kill()
    service.wait()
    report = json.loads(result.stdout)
    with sqlite3.connect(db) as conn:
        pauses = [p for (p,) in conn.execute("SELECT pause_ms FROM snapshots WHERE pause_ms IS NOT NULL")]
    first = report["findings"][0] if report["findings"] else None
    where = (f"{os.path.basename(first['where']['file'])}:{first['where']['line']} ({first['kind']})" if first and first["where"]
             else (f"{first['kind']} {first.get('resource')}" if first else "-"))
    print(f"{path:6} agent={'yes' if agent else 'no ':3} exit={result.returncode} verdict={report['verdict']:12} "
          f"first={where:32} snapshots={report['run']['snapshots']:3} "
          f"pause median={sorted(pauses)[len(pauses) // 2] if pauses else 0:.0f} ms "
          f"requests/s={served[0] / elapsed:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="60s")
    parser.add_argument("--interval", default="1s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for path, agent in (("/leak", True), ("/leak", False), ("/ok", True)):
            one(path, agent, args.duration, args.interval, tmp)


if __name__ == "__main__":
    main()
