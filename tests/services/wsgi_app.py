"""A WSGI app for the pre-fork server tests: ``/leak`` keeps every response in a module-level dict,
``/ok`` keeps nothing. Served by gunicorn's sync workers on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

_responses: dict[int, bytes] = {}


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = f"{os.getpid()} {len(_responses)}".encode() * 20
    if environ.get("PATH_INFO") == "/leak":
        _responses[len(_responses)] = body + b"x" * 200  # LEAK
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Worker-Pid", str(os.getpid()))])
    return [body]
