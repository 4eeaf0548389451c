"""Async workloads that tell an honest event loop from a dishonest one: a coroutine that blocks
the loop with ``time.sleep``, one that awaits a client whose ``async`` API runs in a thread pool,
and one that is truly async (``asyncio.sleep`` and non-blocking sockets on 127.0.0.1)."""
