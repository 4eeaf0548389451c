"""Dishonest: awaits a client whose ``async`` call runs in the loop's default thread pool."""

import asyncio

from soak.workloads.async_.slow_client import SlowClient

EXPECTED = "hidden pool"

_client = SlowClient()


async def step() -> None:
    answer = await _client.fetch("hello")  # CALLS THE POOL
    assert answer == "HELLO"
    await asyncio.sleep(0.002)
