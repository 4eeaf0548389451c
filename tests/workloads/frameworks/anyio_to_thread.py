"""Dishonest: an ``async`` function that runs its blocking half with ``anyio.to_thread.run_sync``."""

import time

import anyio.to_thread


def _blocking_lookup() -> int:
    time.sleep(0.02)  # a sync SDK's network call
    return 7


async def step() -> None:
    assert await anyio.to_thread.run_sync(_blocking_lookup) == 7  # CALLS THE POOL
