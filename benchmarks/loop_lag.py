"""Cost of the async probes: an async workload's throughput with the probes on vs. off.

Each workload runs in a fresh process, one event loop, for ``--rounds`` rounds; a round runs it
for ``--seconds`` in each configuration, interleaved (off, lag, all; then all, lag, off), the
probes started and stopped between slices, so that machine load drifts across all three alike:

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
- ``pool``: ``await loop.run_in_executor(None, f)`` of a trivial ``f`` (the wrappers' worst case
  for an executor: a stamp at each submit, an answer read at each completion);
- ``anyio``: ``await anyio.to_thread.run_sync(f)`` of a trivial ``f`` (anyio's worker threads:
  an answer read at each completion, and the scan of the loop's waiting tasks every 10 ms).

Printed per workload: the median calls/s with the probes off; per configuration, the median of
each round's ratio to ``off`` in the same round with its quartiles (how much a shared machine
moves it), and the probes' own time as they measure it (``own_s``: the heartbeat and watchdog,
the submit wrapper) as a share of wall time, which load on the machine does not blur.

    python benchmarks/loop_lag.py [--seconds 1] [--rounds 15] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

CONFIGS = ("off", "lag", "all")
WORKLOADS = ("sockets", "callbacks", "pool", "anyio")
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
    if name == "anyio":
        import anyio.to_thread

        async def in_anyio_thread() -> None:
            await anyio.to_thread.run_sync(int)
        return in_anyio_thread
    loop = asyncio.get_running_loop()

    async def in_executor() -> None:
        await loop.run_in_executor(None, int)
    return in_executor


async def _slice(call: Callable[[], Awaitable[None]], probes: Any, config: str, seconds: float,
                 concurrency: int) -> tuple[float, float]:
    """Calls/s of ``concurrency`` callers for ``seconds``, with the probes of ``config`` on, and
    the share of the time the probes measured as their own cost (``own_s``)."""
    loop = asyncio.get_running_loop()
    if config != "off":
        probes.start(loop)
        if config == "lag":
            probes.pools.uninstall()
    calls = 0
    own_s = 0.0
    end = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal calls
        while time.monotonic() < end:
            await call()
            calls += 1

    def collect() -> None:
        nonlocal own_s
        with probes.pausing():
            for probe in probes.probes:
                own_s += sum(r.value for r in probe.collect().readings if r.series == "own_s")

    async def collector() -> None:
        while time.monotonic() < end:
            await asyncio.sleep(COLLECT_EVERY_S)
            if config != "off":
                collect()

    started = time.monotonic()
    await asyncio.gather(collector(), *(caller() for _ in range(concurrency)))
    if config != "off":
        collect()
    elapsed = time.monotonic() - started
    probes.stop()  # and put back: the next slice may be "off"
    return calls / elapsed, own_s / elapsed


async def _rounds(workload: str, rounds: int, seconds: float, concurrency: int) -> dict[str, list[list[float]]]:
    from soak.inprocess.probes.async_health import AsyncProbes

    call = await _workload(workload)
    rates: dict[str, list[list[float]]] = {config: [] for config in CONFIGS}
    for round_no in range(rounds):
        for config in CONFIGS if round_no % 2 == 0 else tuple(reversed(CONFIGS)):
            rates[config].append(list(await _slice(call, AsyncProbes(), config, seconds, concurrency)))
    return rates


def _child(args: argparse.Namespace) -> None:
    print(json.dumps(asyncio.run(_rounds(args.workload, args.rounds, args.seconds, args.concurrency))))


def _run_child(workload: str, rounds: int, seconds: float, concurrency: int) -> dict[str, list[list[float]]]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--workload", workload, "--rounds", str(rounds),
         "--seconds", str(seconds), "--concurrency", str(concurrency)],
        capture_output=True, text=True, check=True,
    )
    return cast("dict[str, list[list[float]]]", json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--workload", default="sockets")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    workloads = args.workloads.split(",")
    rates = {}
    for workload in workloads:
        rates[workload] = _run_child(workload, args.rounds, args.seconds, args.concurrency)
        print(f"{workload} done", file=sys.stderr)
    print(f"async probes' cost: {args.rounds} interleaved rounds of {args.seconds:g}s per configuration, --concurrency {args.concurrency}")
    print("ratio: the median of each round's calls/s over the same round's off (its quartiles beside it);"
          " own: the probes' own time (own_s) as a share of wall time")
    print(f"{'workload':<10} {'off calls/s':>12} {'lag/off':>8} {'quartiles':>13} {'own':>7}"
          f" {'all/off':>8} {'quartiles':>13} {'own':>7}")
    for workload in workloads:
        r: dict[str, Any] = rates[workload]
        row = f"{workload:<10} {statistics.median(x[0] for x in r['off']):>12,.0f}"
        for config in ("lag", "all"):
            ratios = sorted(on[0] / off[0] for on, off in zip(r[config], r["off"], strict=False))
            q1, _, q3 = statistics.quantiles(ratios, n=4)
            own = statistics.median(x[1] for x in r[config])
            row += f" {statistics.median(ratios):>8.3f} {f'{q1:.2f}-{q3:.2f}':>13} {own:>7.2%}"
        print(row)


if __name__ == "__main__":
    main()
