"""A client whose API is ``async`` outside and a thread pool inside: each call runs its blocking
request in the loop's default executor (as many "async" SDKs wrapping a sync one do)."""

import asyncio
import time


class SlowClient:
    def _request_blocking(self, query: str) -> str:
        time.sleep(0.02)  # a blocking network call of a sync SDK
        return query.upper()

    async def fetch(self, query: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._request_blocking, query)  # HIDDEN POOL
