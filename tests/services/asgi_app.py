"""An ASGI app for the spawned-worker tests (uvicorn --workers): ``/leak`` keeps every response in a
module-level dict, ``/ok`` keeps nothing."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

_responses: dict[int, bytes] = {}


async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
    if scope["type"] != "http":
        return
    body = f"{os.getpid()} {len(_responses)}".encode() * 20
    if scope["path"] == "/leak":
        _responses[len(_responses)] = body + b"x" * 200  # LEAK
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"x-worker-pid", str(os.getpid()).encode())]})
    await send({"type": "http.response.body", "body": body})
