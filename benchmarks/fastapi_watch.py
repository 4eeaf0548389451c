"""A FastAPI service's requests/s under ``soak watch``: the async probes' cost where users meet them.

The service is tests/services/fastapi_service.py under uvicorn: ``/sync`` a plain ``def``
endpoint (Starlette runs it in anyio's worker threads: the hidden pool the probes report),
``/async`` its ``async def`` twin. Interleaved rounds, each path in two configurations:

- ``plain``: the service alone;
- ``watched``: under the agent (``python -m soak.agent``, the sampled tracer), its loop watched
  (``soak.agent.watch_loop()`` at startup), while ``soak watch --interval 1s`` snapshots it, let
  reach its steady state before the load starts (benchmarks/sidecar.py's load generator, in its
  own process: ``--connections`` closed-loop clients).

Printed per path: the median requests/s of each configuration, the median of each round's
watched/plain ratio, and the watched run's verdict and async findings.

    python benchmarks/fastapi_watch.py [--duration 10] [--rounds 3] [--connections 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sidecar import drive, free_port, wait_for_steady_state

SERVICE = Path(__file__).resolve().parent.parent / "tests" / "services" / "fastapi_service.py"
PATHS = ("/sync", "/async")


def start(port: int, sock: str | None) -> subprocess.Popen[str]:
    command = [sys.executable, str(SERVICE), str(port)]
    if sock is not None:
        command = [sys.executable, "-m", "soak.agent", "--socket", sock, "--tracer", "sampled", "--", *command[1:]]
    service = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert service.stdout is not None and service.stdout.readline().strip() == "listening"
    return service


def one(path: str, watched: bool, args: argparse.Namespace, tmp: str) -> tuple[float, dict[str, Any] | None]:
    """Requests/s of ``path``, and the watcher's report when watched."""
    port = free_port()
    sock = os.path.join(tmp, f"agent-{port}", "a.sock") if watched else None
    service = start(port, sock)
    watcher = None
    try:
        if sock is not None:
            db = os.path.join(tmp, f"watch-{port}.db")
            watcher = subprocess.Popen([sys.executable, "-m", "soak", "watch", "--pid", str(service.pid), "--socket", sock,
                                        "--db", db, "--duration", f"{args.duration + 300:.0f}s", "--interval", "1s",
                                        "--format", "json", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            wait_for_steady_state(db, watcher)
        rps, _ = drive(port, path, args.duration, args.connections)
        report = None
        if watcher is not None:
            watcher.send_signal(signal.SIGINT)
            out, _ = watcher.communicate(timeout=120)
            report = json.loads(out)
        return rps, report
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.kill()
        service.kill()
        service.wait()


def _findings(report: dict[str, Any] | None) -> str:
    if report is None:
        return "-"
    found = [f"{os.path.basename(f['where']['file'])}:{f['where']['line']} {f['evidence'].get('measure')}"
             f" {f['evidence'].get('share', 0):.0%} ({f['evidence'].get('submitted', '')})"
             for f in report["findings"] if f["kind"] == "async" and f["where"]]
    return f"{report['verdict']}: " + ("; ".join(found) or "no async finding")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=10)
    args = parser.parse_args()
    results: dict[str, dict[bool, list[tuple[float, dict[str, Any] | None]]]] = {p: {False: [], True: []} for p in PATHS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            for path in PATHS:
                for watched in (False, True) if round_no % 2 == 0 else (True, False):
                    results[path][watched].append(one(path, watched, args, tmp))
                    print(f"round {round_no + 1} {path} {'watched' if watched else 'plain'} done", file=sys.stderr)
    print(f"FastAPI under soak watch: {args.rounds} interleaved rounds of {args.duration:g}s, {args.connections} connections")
    print(f"{'path':<8} {'plain req/s':>12} {'watched req/s':>14} {'ratio':>6}  watched run")
    for path in PATHS:
        plain = [rps for rps, _ in results[path][False]]
        under_watch = [rps for rps, _ in results[path][True]]
        ratio = statistics.median(w / p for w, p in zip(under_watch, plain, strict=True))
        print(f"{path:<8} {statistics.median(plain):>12,.0f} {statistics.median(under_watch):>14,.0f} {ratio:>6.2f}"
              f"  {_findings(results[path][True][-1][1])}")


if __name__ == "__main__":
    main()
