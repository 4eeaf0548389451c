"""Leaky (async): each request starts a background task that never finishes."""

import asyncio

EXPECTED = "leak"


async def _wait_forever(buffer: bytearray) -> None:
    await asyncio.Event().wait()


async def step() -> None:
    buffer = bytearray(300)
    asyncio.ensure_future(_wait_forever(buffer))  # LEAK
    await asyncio.sleep(0.0005)
