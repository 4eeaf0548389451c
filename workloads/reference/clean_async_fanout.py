"""Clean (async): each request fans out to ten subtasks and gathers them all."""

import asyncio

EXPECTED = "clean"


async def _fetch(n: int) -> bytes:
    await asyncio.sleep(0)
    return bytes(100 + n)


async def step() -> None:
    results = await asyncio.gather(*(_fetch(n) for n in range(10)))
    assert len(results) == 10
    await asyncio.sleep(0.0005)
