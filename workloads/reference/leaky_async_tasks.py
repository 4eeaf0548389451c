"""Leaky (async): each request hands its buffer to a background task; one in four (at scale 1) waits for a shutdown that never comes."""

import asyncio

from soak.workloads.reference._rates import LeakRate

EXPECTED = "leak"

_shutdown = asyncio.Event()  # set at shutdown, which never comes
_no_wait = asyncio.Event()  # already set: a task given this one flushes at once
_no_wait.set()
_waits_for_shutdown = LeakRate(0.25)  # the share of requests whose task waits (LEAKSOAK_LEAK_SCALE)
# (asyncio.Event binds to the running loop on first wait, so it can be made at import.)


async def step() -> None:
    """Handle one request: hand its buffer to a background task that clears it at shutdown."""
    waits = _waits_for_shutdown()
    event = _shutdown if waits else _no_wait
    buffer = bytearray(300)  # LEAK
    asyncio.ensure_future(_flush_on_shutdown(buffer, event))  # LEAK
    await asyncio.sleep(0.0005)


async def _flush_on_shutdown(buffer: bytearray, shutdown: asyncio.Event) -> None:
    # A waiting task keeps what its wait allocated here: Event.wait's coroutine and its future
    # (and, before 3.11, the coroutine's frame object, which makes this the largest site on 3.10).
    await shutdown.wait()  # LEAK
    buffer.clear()
