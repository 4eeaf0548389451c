"""The client's ``complete()`` is a coroutine, but its HTTP request is a blocking ``urllib``
call run in the event loop's default thread pool: a service built for many concurrent requests
is as concurrent as that pool (min(32, CPUs + 4) threads), and nothing in its API says so."""

from __future__ import annotations

import asyncio
import json
import urllib.request


class LLMClient:
    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _post(self, prompt: str) -> str:
        request = urllib.request.Request(
            f"{self.base_url}/v1/complete", data=json.dumps({"prompt": prompt}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.loads(response.read())["text"]

    async def complete(self, prompt: str) -> str:
        """The completion of ``prompt``."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._post, prompt)  # HIDDEN POOL
