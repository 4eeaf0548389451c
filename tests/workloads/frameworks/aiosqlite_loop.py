"""Dishonest: an aiosqlite query loop. Each query runs in the connection's own thread, fed by a queue."""

import asyncio

import aiosqlite

QUERY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 60000) SELECT count(*) FROM c"
_db: aiosqlite.Connection | None = None
_opening = asyncio.Lock()


async def step() -> None:
    global _db
    async with _opening:  # one connection, opened on the workload's loop by its first call
        if _db is None:
            _db = await aiosqlite.connect(":memory:")
    rows = await _db.execute_fetchall(QUERY)  # CALLS THE DATABASE
    assert list(rows) == [(60000,)]
