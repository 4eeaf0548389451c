"""Dishonest: a coroutine that calls ``time.sleep``, which holds the event loop while it sleeps."""

import asyncio
import time

EXPECTED = "blocked loop"


async def step() -> None:
    await asyncio.sleep(0.01)
    time.sleep(0.08)  # BLOCKS
