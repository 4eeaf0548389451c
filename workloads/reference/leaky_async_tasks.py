"""Leaky (async): each request starts a background task that waits for a shutdown that never comes."""

import asyncio

EXPECTED = "leak"

_shutdown: asyncio.Event | None = None


async def _flush_on_shutdown(buffer: bytearray) -> None:
    assert _shutdown is not None
    await _shutdown.wait()
    buffer.clear()


async def step() -> None:
    global _shutdown
    if _shutdown is None:
        _shutdown = asyncio.Event()
    buffer = bytearray(300)  # LEAK
    asyncio.ensure_future(_flush_on_shutdown(buffer))  # LEAK
    await asyncio.sleep(0.0005)
