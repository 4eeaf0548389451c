"""Cost of the async probes: an async workload's throughput with the probes on vs. off.

Each round runs each workload for ``--seconds`` in a fresh process, per configuration, in
interleaved order (off, lag, all; then the next round), so that machine load drifts across all
three alike:

- ``off``: the workload alone on its event loop;
- ``lag``: with the event-loop lag probe attached (a heartbeat every 10 ms and its watchdog
  thread), collected every 0.25 s as a soak would;
- ``all``: the lag probe and the hidden-thread-pool probe (``submit`` wrapped), as ``soak run``
  runs an ``async def`` target.

Workloads, each with ``--concurrency`` callers on one loop:

- ``sockets``: a round trip over a non-blocking socket to an echo server on the same loop
  (127.0.0.1), the shape of an I/O-bound service;
- ``callbacks``: ``await asyncio.sleep(0)`` ten times a call, a loop that does nothing but
  schedule (the heartbeat's worst case);
- ``pool``: ``await loop.run_in_executor(None, f)`` of a trivial ``f`` (the wrapper's worst case).

Printed per workload: median calls/s per configuration and the median of each round's ratio to
``off`` in the same round.

    python benchmarks/loop_lag.py [--seconds 3] [--rounds 5] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any, Awaitable, Callable

CONFIGS = ("off", "lag", "all")
WORKLOADS = ("sockets", "callbacks", "pool")
COLLECT_EVERY_S = 0.25


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.readline():
        writer.write(data)
        await writer.drain()
    writer.close()


async def _workload(name: str) -> Callable[[], Awaitable[None]]:
    if name == "sockets":
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]

        async def call() -> None:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"ping\n")
            await writer.drain()
            await reader.readline()
            writer.close()
            await writer.wait_closed()
        return call
    if name == "callbacks":
        async def call() -> None:
            for _ in range(10):
                await asyncio.sleep(0)
        return call
    loop = asyncio.get_running_loop()

    async def call() -> None:
        await loop.run_in_executor(None, int)
    return call


async def _measure(workload: str, config: str, seconds: float, concurrency: int) -> float:
    from soak.probes.async_health import AsyncProbes

    call = await _workload(workload)
    probes = AsyncProbes()
    if config != "off":
        probes.start(asyncio.get_running_loop())
        if config == "lag":
            probes.pools.uninstall()
    calls = 0
    end = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal calls
        while time.monotonic() < end:
            await call()
            calls += 1

    async def collector() -> None:
        while time.monotonic() < end:
            await asyncio.sleep(COLLECT_EVERY_S)
            if config != "off":
                with probes.pausing():
                    for probe in probes.probes:
                        probe.collect()

    started = time.monotonic()
    await asyncio.gather(collector(), *(caller() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    probes.stop()
    return calls / elapsed


def _child(args: argparse.Namespace) -> None:
    rate = asyncio.run(_measure(args.workload, args.config, args.seconds, args.concurrency))
    print(json.dumps({"rate": rate}))


def _run_child(workload: str, config: str, seconds: float, concurrency: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--workload", workload, "--config", config,
         "--seconds", str(seconds), "--concurrency", str(concurrency)],
        capture_output=True, text=True, check=True,
    )
    return float(json.loads(out.stdout)["rate"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--workload", default="sockets")
    parser.add_argument("--config", default="off")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    workloads = args.workloads.split(",")
    rates: dict[str, dict[str, list[float]]] = {w: {c: [] for c in CONFIGS} for w in workloads}
    for round_no in range(args.rounds):
        for workload in workloads:
            order = CONFIGS if round_no % 2 == 0 else tuple(reversed(CONFIGS))
            for config in order:
                rates[workload][config].append(_run_child(workload, config, args.seconds, args.concurrency))
        print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
    print(f"async probes' cost: {args.rounds} interleaved rounds of {args.seconds:g}s, --concurrency {args.concurrency}")
    print(f"{'workload':<10} {'off calls/s':>12} {'lag calls/s':>12} {'lag/off':>8} {'all calls/s':>12} {'all/off':>8}")
    for workload in workloads:
        r: dict[str, Any] = rates[workload]
        ratios = {c: statistics.median(on / off for on, off in zip(r[c], r["off"])) for c in ("lag", "all")}
        print(f"{workload:<10} {statistics.median(r['off']):>12,.0f} {statistics.median(r['lag']):>12,.0f} "
              f"{ratios['lag']:>8.3f} {statistics.median(r['all']):>12,.0f} {ratios['all']:>8.3f}")


if __name__ == "__main__":
    main()
