"""Sidecar benchmark: `soak watch` every second beside a real HTTP service on 127.0.0.1, per tracer.

The service is tests/services/http_service.py (``/leak`` keeps every request's payload, ``/ok``
does the same work and keeps nothing). A load generator in its own process drives it as fast as it
answers (``--connections`` closed-loop clients, bounded by ``--duration``), so requests/s is the
service's capacity beside whatever watches it. Interleaved rounds, each of:

- ``plain``: the service alone, not watched (the baseline);
- ``agent-sampled``, ``agent-exact``: the service under the agent (``python -m soak.agent
  --tracer ...``) while ``soak watch --interval 1s`` snapshots it.

A watcher is let reach its steady state (imports done, three snapshots and the first analysis
stored) before the load starts, as a sidecar that runs for days is measured; ``--start-load S``
also drives the load for S seconds across the watcher's start and prints that rate's share.

Printed per configuration: median requests/s and its share of the same round's ``plain`` rate;
"by cpu", the same share computed from CPU seconds per request of service, watcher and load
generator together (what the rate would be on a machine they alone saturate: steadier than the
rate where other work shares the cores); the watcher's own CPU (share of one core while the load
ran), the agent's pause per snapshot (the time it holds the GIL: p50, p99, max over every snapshot of every
round), the verdict and the first finding's line. Then two verdict checks: the same service
without the agent, watched (a process-level leak), and ``/ok`` under the sampled agent (clean).

    python benchmarks/sidecar.py [--duration 60s] [--interval 1s] [--rounds 3] [--tracers sampled,exact]
                                 [--start-load SECONDS] [--breakdown] [--service http|gunicorn]

``--service gunicorn`` measures a pre-fork service as people run it: gunicorn with 2 sync workers
(tests/services/wsgi_app.py), started with ``python -m soak.agent -- gunicorn ...``, watched by
``soak watch --pid MASTER``, which follows the workers (each a run of its own, judged together).

``--breakdown`` adds the agent unwatched and a watch without the agent, to split the cost between
the agent's hooks, its snapshots and the watcher's own CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = Path(__file__).resolve().parent.parent / "tests" / "services"
SERVICE = SERVICES / "http_service.py"
GUNICORN_WORKERS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(port: int, path: str, seconds: float, connections: int) -> int:
    """Requests answered in ``seconds`` by ``connections`` closed-loop clients (run in a child process)."""
    request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode()
    deadline = time.monotonic() + seconds
    counts = [0] * connections

    def client(i: int) -> None:
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                    conn.sendall(request)
                    while conn.recv(65536):
                        pass
                counts[i] += 1
            except OSError:
                time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


@dataclass
class Outcome:
    config: str
    path: str
    rps: float
    verdict: str | None = None
    first: str | None = None
    snapshots: int = 0
    pauses: list[float] = field(default_factory=list)
    exit_code: int | None = None
    service_cpu_s: float = 0.0
    watcher_cpu_s: float = 0.0
    start_rps: float | None = None
    loader_cpu_s: float = 0.0

    def cpu_per_request(self, seconds: float) -> float:
        """CPU seconds per request of service, watcher and load generator together: on a machine
        that the three saturate, capacity is inversely proportional to it, whatever else runs."""
        return (self.service_cpu_s + self.watcher_cpu_s + self.loader_cpu_s) / (self.rps * seconds)


def start_service(port: int, tracer: str | None, sock: str, kind: str = "http") -> subprocess.Popen[str]:
    """The service: tests/services/http_service.py (one process), or with ``kind`` gunicorn,
    tests/services/wsgi_app.py in 2 sync workers; under the agent when ``tracer`` is given."""
    if kind == "gunicorn":
        program = ["gunicorn", "-w", str(GUNICORN_WORKERS), "-b", f"127.0.0.1:{port}", "--chdir", str(SERVICES), "wsgi_app:app"]
        command = [sys.executable, "-m", *program]
        if tracer is not None:
            command = [sys.executable, "-m", "soak.agent", "--socket", sock, "--tracer", tracer, "--", *program]
        service = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        wait_for_workers(service, port, sock if tracer is not None else None)
        return service
    command = [sys.executable, str(SERVICE), str(port)]
    if tracer is not None:
        command = [sys.executable, "-m", "soak.agent", "--socket", sock, "--tracer", tracer, "--", *command[1:]]
    service = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert service.stdout is not None and service.stdout.readline().strip() == "listening"
    return service


def wait_for_workers(service: subprocess.Popen[str], port: int, sock: str | None, timeout: float = 60.0) -> None:
    """Until gunicorn answers on ``port`` with its workers up (each with its agent's socket, under the agent)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise SystemExit(f"gunicorn exited with {service.returncode}")
        workers = psutil.Process(service.pid).children()
        agents = all(os.path.exists(os.path.join(os.path.dirname(sock), f"agent-{w.pid}.sock")) for w in workers) if sock else True
        if len(workers) >= GUNICORN_WORKERS and agents:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                pass
        time.sleep(0.2)
    raise SystemExit("gunicorn's workers did not start in 60 s")


def one(config: str, path: str, tracer: str | None, watch: bool, args: argparse.Namespace, tmp: str) -> Outcome:
    """One configuration: start the service (and the watcher), drive the load, read the outcome.

    A watcher is first let reach its steady state (its imports done, a few snapshots stored, the
    first analysis refresh written) before the load starts, since a sidecar runs for days and its
    start is paid once; what that start cost the service is measured too (``start_share``), by a
    load run across it.
    """
    port = free_port()
    sock = os.path.join(tmp, f"agent-{port}", "a.sock")
    service = start_service(port, tracer, sock, args.service)
    db = os.path.join(tmp, f"sidecar-{port}.db")
    watcher = None
    try:
        if watch:
            command = [sys.executable, "-m", "soak", "watch", "--pid", str(service.pid), "--db", db,
                       "--duration", f"{args.duration_s + 300:.0f}s", "--interval", args.interval,
                       "--format", "json", "-q"]
            if tracer is not None:
                command += ["--socket", sock]
            else:
                command += ["--tracer", "off"]
            watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if args.start_load:
                # The load meets the watcher starting: imports, first snapshots, first analysis.
                start, _ = drive(port, path, args.start_load, args.connections)
            wait_for_steady_state(db, watcher)
        watcher_cpu_before = cpu_seconds(watcher.pid) if watcher is not None else 0.0
        service_cpu_before = cpu_seconds(service.pid)
        rps, loader_cpu = drive(port, path, args.duration_s, args.connections)
        outcome = Outcome(config, path, rps, loader_cpu_s=loader_cpu)
        outcome.service_cpu_s = cpu_seconds(service.pid) - service_cpu_before
        if watcher is not None:
            outcome.watcher_cpu_s = cpu_seconds(watcher.pid) - watcher_cpu_before
            if args.start_load:
                outcome.start_rps = start
            watcher.send_signal(signal.SIGINT)
            out, err = watcher.communicate(timeout=120)
            outcome.exit_code = watcher.returncode
            report = json.loads(out)
            outcome.verdict = report["verdict"]
            outcome.snapshots = report["run"]["snapshots"]
            found = report.get("tree_findings") or report["findings"]  # a tree's findings judged together first
            first = found[0] if found else None
            if first and first["where"]:
                outcome.first = f"{os.path.basename(first['where']['file'])}:{first['where']['line']} ({first['kind']})"
                if "processes" in first:
                    outcome.first += f" in {first['processes']} of {first['watched']} processes"
            elif first:
                outcome.first = f"{first['kind']} {first.get('resource')}"
            with sqlite3.connect(db) as conn:
                outcome.pauses = [p for (p,) in conn.execute("SELECT pause_ms FROM snapshots WHERE pause_ms IS NOT NULL")]
        elif args.start_load:
            outcome.start_rps = outcome.rps
        return outcome
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.kill()
        service.kill()
        service.wait()


def drive(port: int, path: str, seconds: float, connections: int) -> tuple[float, float]:
    """Requests/s that the load generator, in its own process, got from the service, and the CPU
    seconds the load generator used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    loader = subprocess.run(
        [sys.executable, __file__, "--load", str(port), path, str(seconds), str(connections)],
        capture_output=True, text=True, check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return int(loader.stdout.strip()) / seconds, cpu


def wait_for_steady_state(db: str, watcher: subprocess.Popen[str], timeout: float = 90.0) -> None:
    """Until the watcher has stored 3 snapshots and its first analysis refresh (scipy loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if watcher.poll() is not None:
            raise SystemExit(f"the watcher ended early: {watcher.stderr.read() if watcher.stderr else ''}")
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                snapshots = conn.execute("SELECT count(*) FROM snapshots").fetchone()[0]
                analysed = conn.execute("SELECT count(*) FROM runs WHERE analysis IS NOT NULL").fetchone()[0]
            if snapshots >= 3 and analysed:
                return
        except sqlite3.Error:
            pass
        time.sleep(0.25)
    raise SystemExit("the watcher did not reach a steady state in 90 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process and its live descendants (a server's workers)
    have used so far (0 for one that is gone)."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        children = []
    return _own_cpu_seconds(pid) + sum(_own_cpu_seconds(child.pid) for child in children)


def _own_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", default="60s")
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tracers", default="sampled,exact")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--service", choices=("http", "gunicorn"), default="http",
                        help="http: one process (tests/services/http_service.py); gunicorn: tests/services/wsgi_app.py "
                             f"in {GUNICORN_WORKERS} sync workers, watched as a process tree (soak watch --pid MASTER)")
    parser.add_argument("--start-load", type=float, default=0.0, metavar="SECONDS",
                        help="also drive the load for SECONDS across the watcher's start (its imports, first "
                             "snapshots and analysis) and print that rate's share of plain")
    parser.add_argument("--breakdown", action="store_true",
                        help="also run the agent unwatched and a watch without the agent, to split the cost")
    parser.add_argument("--load", nargs=4, metavar=("PORT", "PATH", "SECONDS", "CONNECTIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        port, path, seconds, connections = args.load
        print(load(int(port), path, float(seconds), int(connections)))
        return
    from soak.durations import parse_duration

    args.duration_s = parse_duration(args.duration)
    tracers = [t for t in args.tracers.split(",") if t]
    configs: list[tuple[str, str | None, bool]] = [("plain", None, False)] + [(f"agent-{t}", t, True) for t in tracers]
    if args.breakdown:
        configs += [(f"unwatched-{t}", t, False) for t in tracers] + [("watch-no-agent", None, True)]
    results: dict[str, list[Outcome]] = {name: [] for name, _, _ in configs}
    shares: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    start_shares: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    cpu_shares: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    print(f"sidecar benchmark: {args.service} service, /leak, {args.rounds} rounds of {args.duration},"
          f" soak watch --interval {args.interval}, "
          f"{args.connections} closed-loop connections; {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(1, args.rounds + 1):
            order = configs if round_no % 2 else list(reversed(configs))
            this_round: dict[str, Outcome] = {}
            for name, tracer, watch in order:
                outcome = one(name, "/leak", tracer, watch, args, tmp)
                this_round[name] = outcome
                results[name].append(outcome)
                print(f"  round {round_no} {name:22} {outcome.rps:7.0f} requests/s"
                      + (f"  verdict={outcome.verdict} first={outcome.first} snapshots={outcome.snapshots}"
                         f" pause p50={percentile(outcome.pauses, 0.5):.1f} ms max={max(outcome.pauses):.1f} ms"
                         if outcome.pauses else "")
                      + f"  cpu service={outcome.service_cpu_s:.1f}s watcher={outcome.watcher_cpu_s:.1f}s"
                        f" load={outcome.loader_cpu_s:.1f}s"
                        f" ({outcome.cpu_per_request(args.duration_s) * 1e6:.0f} us/request)", flush=True)
            for name in this_round:
                shares[name].append(this_round[name].rps / this_round["plain"].rps)
                cpu_shares[name].append(this_round["plain"].cpu_per_request(args.duration_s)
                                        / this_round[name].cpu_per_request(args.duration_s))
                start = this_round[name].start_rps
                if start is not None:
                    start_shares[name].append(start / this_round["plain"].rps)
        print()
        print(f"{'config':22} {'requests/s':>10} {'of plain':>9} {'by cpu':>7} {'watcher cpu':>11}"
              + (f" {'at start':>9}" if args.start_load else "")
              + f" {'pause p50':>10} {'p99':>8} {'max':>8}  verdict, first finding")
        for name, _, _ in configs:
            runs = results[name]
            pauses = [p for run in runs for p in run.pauses]
            line = (f"{name:22} {statistics.median(r.rps for r in runs):10.0f} {statistics.median(shares[name]):8.1%}"
                    f" {statistics.median(cpu_shares[name]):6.1%}"
                    f" {statistics.median(r.watcher_cpu_s for r in runs) / args.duration_s:10.1%}"
                    + (f" {statistics.median(start_shares[name]):8.1%}" if start_shares[name] else ""))
            if pauses:
                line += (f" {percentile(pauses, 0.5):8.1f}ms {percentile(pauses, 0.99):6.1f}ms {max(pauses):6.1f}ms  "
                         + ", ".join(sorted({f'{r.verdict} {r.first}' for r in runs})))
            print(line)
        print()
        for name, path, tracer in (("no agent", "/leak", None), ("agent-sampled", "/ok", "sampled")):
            outcome = one(name, path, tracer, True, args, tmp)
            print(f"check {path:5} {name:14} exit={outcome.exit_code} verdict={outcome.verdict} first={outcome.first} "
                  f"snapshots={outcome.snapshots} requests/s={outcome.rps:.0f}", flush=True)


if __name__ == "__main__":
    main()
